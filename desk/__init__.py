"""Desk: an embeddable, real-time agent desk for customer chat on messengers."""

__version__ = "0.1.0"


def create_app(*args, **kwargs):  # noqa: ANN002, ANN003
    """Build the app (imported lazily so ``import desk`` stays cheap)."""
    from desk.app import create_app as factory

    return factory(*args, **kwargs)
