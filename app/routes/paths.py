"""The service's public paths, written once: the floor and the body cap guard CHECK_PATH by name."""

CHECK_PATH = "/v1/check"
CHALLENGE_PATH = "/v1/challenge"
