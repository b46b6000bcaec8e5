"""The web app: webhooks, intake, the dashboard and the agents' sidebar API (Flask)."""
