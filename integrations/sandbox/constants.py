"""Fixed identities of the sandbox Zendesk account.

Zendesk ids are 64-bit integers (users, groups, comments, audits look like
36000000000101); only ticket ids are small and sequential per account. The
sandbox uses the same ranges so code that assumes small or 32-bit ids fails here
rather than in production.
"""

SUBDOMAIN = "sandbox"
ACCOUNT_ID = 24681357

BOT_AGENT_ID = 36000000000101
BOT_AGENT_NAME = "Helpdesk Bot"
BOT_AGENT_EMAIL = "bot@orbitask.example"

HUMAN_AGENT_ID = 36000000000102
HUMAN_AGENT_NAME = "Riley Morgan"
HUMAN_AGENT_EMAIL = "riley@orbitask.example"

ESCALATION_GROUP_ID = 36000000000201  # "Support"
BILLING_GROUP_ID = 36000000000202  # "Billing"

BRAND_ID = 36000000000301
TICKET_FORM_ID = 36000000000401
PERMISSION_GROUP_ID = 36000000000501  # Help Center "Admins" permission group

# Ids of objects created while the sandbox runs (users, comments, audits, articles).
FIRST_GENERATED_ID = 36000001000001

# Webhook ids are ULIDs in Zendesk (see webhook_create.json).
WEBHOOK_ID = "01J0SANDBXWEBHK00000000001"

TICKET_STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
TICKET_PRIORITIES = (None, "low", "normal", "high", "urgent")
TICKET_TYPES = (None, "problem", "incident", "question", "task")

# Every account has one system custom status per status category; tickets carry its id.
CUSTOM_STATUS_IDS = {status: 36000000000601 + i for i, status in enumerate(TICKET_STATUSES)}
