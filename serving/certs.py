"""UPSTREAM_TLS=true: a private CA, and a certificate from it for each upstream.

    python -m serving.certs DIR NAME...

Writes DIR/ca.pem, the CA's certificate (what the gateways trust, and nothing else), and
DIR/NAME.pem for each NAME: its private key and certificate chain, valid for NAME,
localhost and 127.0.0.1. The CA's key never leaves this process, so nothing more can be
signed with it. trustme makes them: ECDSA P-256 keys, as many public sites now use.

Files already there are kept, as long as every NAME has one: a gateway restarted later must
still trust the upstreams that kept theirs. `make down` removes the volume, and the next
start makes a new CA.
"""

import argparse
from pathlib import Path

import trustme

CA_FILE = "ca.pem"


def leaf_file(directory: Path, name: str) -> Path:
    return directory / f"{name}.pem"


def make_certificates(directory: Path, names: list[str]) -> bool:
    """Make the CA and one certificate per name, unless all are there. True if made."""
    wanted = [directory / CA_FILE, *(leaf_file(directory, name) for name in names)]
    if all(path.is_file() for path in wanted):
        return False
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="fanout-lab private CA")
    for name in names:
        leaf = ca.issue_cert(name, "localhost", "127.0.0.1")
        path = leaf_file(directory, name)
        # The key inside: readable by the services' user alone.
        path.touch(mode=0o600)
        leaf.private_key_and_cert_chain_pem.write_to_path(str(path))
    # The CA last: a start cut short leaves no CA without its certificates.
    ca.cert_pem.write_to_path(str(directory / CA_FILE))
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    made = make_certificates(args.directory, args.names)
    verb = "made" if made else "kept"
    print(f"{verb} a private CA and certificates for {', '.join(args.names)} in {args.directory}")


if __name__ == "__main__":
    main()
