"""Segmentation: client-side encryption and erasure coding, as pure streaming codecs.

Two independent layers, applied in this order on write and the reverse on read::

    plaintext ──encrypt (crypto)──▶ ciphertext ──erasure-code──▶ n shares, one per backend
              ◀──decrypt─────────             ◀──decode any k──

* :mod:`~failover.segmentation.crypto`: envelope encryption (a fresh AES-256-GCM data
  key per object, wrapped by a master key from a :class:`KeyProvider`), chunked so that
  memory is bounded and range reads decrypt only the chunks they need.
* :mod:`~failover.segmentation.erasure`: k-of-n Reed-Solomon (zfec) shares with
  self-describing headers and per-block checksums; decode from any k, regenerate one.
* :mod:`~failover.segmentation.keys`: master keys (``FAILOVER_ENCRYPTION_KEY``, rotation,
  KMS callables).
* :mod:`~failover.segmentation.spool`: n share payloads from one write (temp files).
* :mod:`~failover.segmentation.throughput`: encode/decode MB/s per core
  (``measure_throughput``; not imported here, to keep ``python -m`` clean).

The codecs do no network I/O and know nothing of backends: the replication layer feeds
them bytes and readers. How it wires them (``keys`` from ``Settings.encryption_key``,
``code = ErasureCode.for_backends(n, k=settings.erasure_k)``)::

    # put: one write -> n share payloads, share i to backend i
    encryptor = Encryptor(keys, object_key=key, version=version)
    size = encryptor.ciphertext_size(payload.size)
    with payload.open() as plain:
        shares = spool_shares(encryptor.encrypt(plain), code=code, data_size=size)

    # get: any k shares, streaming; decoder.failed names shares to repair
    decoder = ShareDecoder({name: opener_for(name) for name in preferred_backends})
    for chunk in decrypt(decoder.read(), keys=keys, object_key=key, version=version): ...

    # repair: rebuild share i bit-identical from the others
    rebuilt = Payload.from_source(regenerate(i, {name: opener_for(name) for name in others}))

where ``opener_for(name)`` is ``lambda start, stop: backend.open(key, byte_range=(start,
stop))``. ``cryptography`` and ``zfec`` are imported on first use
(``pip install 'failover[segmentation]'``), so importing this package is cheap.
"""

from __future__ import annotations

from failover.segmentation.crypto import (
    DEFAULT_CHUNK_SIZE,
    MAX_HEADER_SIZE,
    CiphertextRange,
    Decryptor,
    EncryptionHeader,
    Encryptor,
    ciphertext_size,
    decrypt,
    encrypt,
)
from failover.segmentation.erasure import (
    DEFAULT_BLOCK_SIZE,
    ErasureCode,
    ShareDecoder,
    ShareHeader,
    ShareOpener,
    bytes_opener,
    regenerate,
    verify_share,
)
from failover.segmentation.errors import (
    CorruptShareError,
    DecryptionError,
    MismatchedShareError,
    NotEnoughSharesError,
    ShareError,
    UnknownKeyError,
)
from failover.segmentation.keys import (
    CallableKeyProvider,
    KeyProvider,
    StaticKeyProvider,
    derive_key_id,
    generate_master_key,
)
from failover.segmentation.spool import spool_shares

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "MAX_HEADER_SIZE",
    "CallableKeyProvider",
    "CiphertextRange",
    "CorruptShareError",
    "DecryptionError",
    "Decryptor",
    "EncryptionHeader",
    "Encryptor",
    "ErasureCode",
    "KeyProvider",
    "MismatchedShareError",
    "NotEnoughSharesError",
    "ShareDecoder",
    "ShareError",
    "ShareHeader",
    "ShareOpener",
    "StaticKeyProvider",
    "UnknownKeyError",
    "bytes_opener",
    "ciphertext_size",
    "decrypt",
    "derive_key_id",
    "encrypt",
    "generate_master_key",
    "regenerate",
    "spool_shares",
    "verify_share",
]
