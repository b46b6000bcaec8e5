"""The agents' sidebar app for Zendesk (ZAF v2): manifest.json, translations/, assets/.

`package.py` validates it and builds the upload zip (`helpdesk-bot zendesk-app package`);
its API is helpdesk_bot/web/agent_app.py.
"""
