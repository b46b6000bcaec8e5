"""Run the sandbox Zendesk until Ctrl-C:

    python -m integrations.sandbox --port 8765 [--host 127.0.0.1] [--help-center FILE]
        [--webhook-url URL --webhook-secret S] [--webhook-style trigger|event] [--webhook-on-update]
"""

from __future__ import annotations

import argparse
import threading

from .constants import BOT_AGENT_EMAIL, SUBDOMAIN
from .server import SandboxHelpdesk
from .webhooks import WEBHOOK_STYLES


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m integrations.sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--help-center", metavar="FILE", help="JSON with categories, sections, articles")
    parser.add_argument("--webhook-url", help="where to deliver ticket webhooks")
    parser.add_argument("--webhook-secret", help="signing secret for X-Zendesk-Webhook-Signature")
    parser.add_argument("--webhook-style", choices=WEBHOOK_STYLES, default="trigger")
    parser.add_argument("--webhook-on-update", action="store_true",
                        help="also deliver a webhook when a requester adds a public comment")
    args = parser.parse_args(argv)
    if bool(args.webhook_url) != bool(args.webhook_secret):
        parser.error("--webhook-url and --webhook-secret go together")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    sandbox = SandboxHelpdesk(help_center=args.help_center, webhook_url=args.webhook_url,
                              webhook_secret=args.webhook_secret, webhook_style=args.webhook_style,
                              webhook_on_update=args.webhook_on_update)
    sandbox.start(args.host, args.port)
    print(f"Sandbox Zendesk at {sandbox.url} (subdomain {SUBDOMAIN!r}, agent {BOT_AGENT_EMAIL})")
    print(f"  export ZENPY_FORCE_SCHEME=http ZENPY_FORCE_NETLOC={sandbox.netloc}")
    if args.webhook_url:
        print(f"  webhooks ({args.webhook_style}) -> {args.webhook_url}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopping")
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
