"""User tokens: JWTs signed with HS256 by the application that owns the users (or by
`chatapi token mint` in development), verified with PyJWT. The algorithm is fixed (no
`alg: none`, no key confusion), `exp`, `aud` and `sub` are required, `nbf` and `iat` are
honoured, and `iss` is checked when AUTH_JWT_ISSUER is set."""

from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt

from domain.errors import InvalidInput, Unauthenticated
from domain.principals import Principal, user

ALGORITHM = "HS256"
# Distinct good tokens whose check is remembered (a few hundred bytes each).
VERIFIED_TOKENS = 4096


class UserTokens:
    def __init__(self, secret: bytes, audience: str, issuer: str | None = None) -> None:
        self._secret = secret
        self._audience = audience
        self._issuer = issuer
        self._required = ["exp", "aud", "sub", *(["iss"] if issuer else [])]
        # A client sends the same token with every request until it expires: checking its
        # signature and claims once (~60 us) rather than per request. Only tokens found good
        # are kept (a failure raises, and lru_cache keeps no exception); what can change
        # while one is kept, its expiry, is checked on every use.
        self._verified = lru_cache(maxsize=VERIFIED_TOKENS)(self._decode)

    def verify(self, token: str) -> Principal:
        """The user the token names, until its `exp`; Unauthenticated if it is not good."""
        principal = self._verified(token)
        assert principal.expires_at is not None  # `exp` is required
        if principal.expires_at <= datetime.now(UTC):
            raise Unauthenticated("the token has expired")
        return principal

    def _decode(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": self._required},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token is not for this service (aud)") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token is not from the expected issuer (iss)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            # A bad signature, another algorithm, or not a JWT at all.
            raise Unauthenticated("the token is not valid") from None
        subject = claims["sub"]
        try:
            return user(subject, datetime.fromtimestamp(claims["exp"], UTC))
        except (InvalidInput, TypeError, ValueError, OverflowError):
            raise Unauthenticated("the token's sub is not a user id (1..128 characters)") from None

    def mint(self, user_id: str, ttl: timedelta, now: datetime) -> str:
        """A token for `user_id`, good for `ttl` from `now`: for development and tests; in
        production the users' own application mints them."""
        claims: dict[str, object] = {
            "sub": user(user_id).id,
            "aud": self._audience,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
        }
        if self._issuer:
            claims["iss"] = self._issuer
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)
