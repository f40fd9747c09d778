"""Exceptions of the segmentation layer (client-side encryption and erasure coding).

They extend :class:`~failover.errors.IntegrityError`, so the replication layer treats
them like a checksum mismatch: the replica (or share) that produced one is skipped, the
read is served from the others, and the bad copy is scheduled for repair::

    IntegrityError (failover.errors)
    ├── DecryptionError                 ciphertext failed authentication (AES-GCM tag)
    │   └── UnknownKeyError (LookupError)  the master key id is not known to the key provider
    └── ShareError                      an erasure-coded share cannot be used
        ├── CorruptShareError           bad header, block checksum mismatch or truncation
        │   └── MismatchedShareError    the share belongs to another encoding (stale version)
        └── NotEnoughSharesError        fewer than k usable shares; ``.failed`` says why

No message built here contains key material: only key *ids*, object keys, versions,
share labels and sizes.
"""

from __future__ import annotations

from collections.abc import Mapping

from failover.errors import IntegrityError

__all__ = [
    "CorruptShareError",
    "DecryptionError",
    "MismatchedShareError",
    "NotEnoughSharesError",
    "ShareError",
    "UnknownKeyError",
]


class DecryptionError(IntegrityError):
    """Encrypted bytes cannot be decrypted and authenticated.

    Raised for a wrong master key, a tampered header or chunk, chunks that were
    reordered, truncated or appended, and ciphertext that belongs to another object key
    or version. Decryption never returns unauthenticated plaintext.
    """


class UnknownKeyError(DecryptionError, LookupError):
    """The key provider does not know a master key id.

    Attributes:
        key_id: the id that was asked for (ids are not secret).
    """

    def __init__(self, key_id: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"no master key with id {key_id!r}; keep retired keys listed after the current "
            "one in FAILOVER_ENCRYPTION_KEY (or make the key provider return it)"
        )
        self.key_id = key_id


class ShareError(IntegrityError):
    """An erasure-coded share cannot be used."""


class CorruptShareError(ShareError):
    """A share's header or a block's checksum is wrong, or the share is truncated.

    Attributes:
        label: the caller's name for the share (usually the backend name), if known.
    """

    def __init__(self, message: str, *, label: str | None = None) -> None:
        super().__init__(f"share {label!r}: {message}" if label is not None else message)
        self.label = label


class MismatchedShareError(CorruptShareError):
    """A share is intact but belongs to another encoding (another version of the object)."""


class NotEnoughSharesError(ShareError):
    """Fewer than k shares of one encoding could be read.

    Attributes:
        needed: k, the number of shares that reconstruct the data.
        failed: share label to the exception that made it unusable.
    """

    def __init__(self, *, needed: int, failed: Mapping[str, BaseException]) -> None:
        self.needed = needed
        self.failed: dict[str, BaseException] = dict(failed)
        details = "; ".join(f"{label}: {type(e).__name__}: {e}" for label, e in failed.items())
        super().__init__(
            f"need {needed} intact shares of one encoding to reconstruct the data, "
            f"could not get them (failed: {details or 'none; too few shares given'})"
        )
