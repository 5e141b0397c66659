FIRST_CHECK: str  # "libsodium" where the system has it, else "openssl"

def verify_batch(
    keys: bytes, signatures: bytes, messages: bytes, message_size: int, openssl_only: bool = False, /
) -> bytes: ...
