"""Stands in for Keycloak, which is not reachable here: serves one realm's
JWKS on 127.0.0.1 and mints an RS256 token signed by its key, as Keycloak
would for a logged-in user. The app verifies it exactly as in production
(PyJWKClient fetches the JWKS; issuer, signature and expiry are checked).

Prints "PORT TOKEN" on one line, then serves until killed."""

import http.server
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

REALM = "dls"

key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
jwk.update(kid="field-test", use="sig", alg="RS256")
certs_path = f"/realms/{REALM}/protocol/openid-connect/certs"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != certs_path:
            self.send_error(404)
            return
        body = json.dumps({"keys": [jwk]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("keycloak-stub: " + fmt % args + "\n")


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
port = server.server_address[1]
now = int(time.time())
token = jwt.encode(
    {
        "iss": f"http://127.0.0.1:{port}/realms/{REALM}",
        "sub": "field-test",
        "azp": "smartem-frontend",
        "iat": now,
        "exp": now + 3600,
    },
    key,
    algorithm="RS256",
    headers={"kid": "field-test"},
)
print(port, token, flush=True)
server.serve_forever()
