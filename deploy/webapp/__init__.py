"""The example web app (``uvicorn deploy.webapp.app:app``)."""
