"""Room names, made only by these functions."""


def operator_room(operator_id: int) -> str:
    """Return the room of one operator's sockets."""
    return f"operator:{operator_id}"


def token_room(token_hash: str) -> str:
    """Return the room of the sockets opened with one token (closed when it is revoked)."""
    return f"token:{token_hash[:32]}"
