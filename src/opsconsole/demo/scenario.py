"""Demo scenarios and the obviously fake credentials the demo environment uses.

Every simulator builds its state from (scenario, DemoSecrets); the same values go into the
generated config file, so the console authenticates against the simulators exactly as it
would against the real services.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

# healthy: everything fine. incident: every tab has something wrong to look at.
SCENARIOS: tuple[str, ...] = ("healthy", "incident")
DEFAULT_SCENARIO = "incident"

PROJECT_REF = "opsdemoprojectrefabc"  # 20 lowercase letters, like a real project ref
VERCEL_PROJECT_ID = "prj_opsdemo0000000000000000000"
VERCEL_TEAM_ID = "team_opsdemo00000000000000"
VERCEL_PROJECT_NAME = "campaign-api"
N8N_WORKFLOWS = ("1001", "1002")  # the watched sync workflows


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# The demo project's JWT secret: signs the legacy keys and lets the simulator verify them.
DEMO_JWT_SECRET = "demo-jwt-secret-not-real"


def make_legacy_jwt(ref: str, role: str, exp: int, secret: str = DEMO_JWT_SECRET) -> str:
    """An HS256 JWT shaped like Supabase's legacy anon/service_role keys."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps({"iss": "supabase", "ref": ref, "role": role, "iat": exp - 10 * 365 * 86400,
                                  "exp": exp}, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(sig)}"


@dataclass(frozen=True)
class DemoSecrets:
    vercel_token: str = "demo-vercel-token-NOT-REAL-0000"
    supabase_access_token: str = "sbp_demo_NOT_REAL_000000000000000000000000"
    service_role_key: str = ""
    n8n_api_key: str = "n8n-demo-api-key-NOT-REAL-0000"
    twilio_account_sid: str = "AC" + "de" * 16
    twilio_auth_token: str = "demo-twilio-token-NOT-REAL-00000"
    db_password: str = "demo-db-password-NOT-REAL"

    @classmethod
    def for_scenario(cls, scenario: str, now: float | None = None) -> DemoSecrets:
        """incident: the service-role key expires in 5 days (the check warns 14 days ahead)."""
        t = int(now if now is not None else time.time())
        exp = t + 5 * 86400 if scenario == "incident" else t + 3 * 365 * 86400
        return cls(service_role_key=make_legacy_jwt(PROJECT_REF, "service_role", exp))
