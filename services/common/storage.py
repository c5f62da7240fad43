"""The object-store client (MinIO in production, any S3 server in the embedded stack).

A thin layer over the `minio` package that speaks our errors: a missing or unreadable object is
InvalidS3ObjectException, a too-large one ImageTooLargeException, so callers never handle minio
exceptions themselves.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import S3Error

from services.common.errors import ImageTooLarge, InvalidS3Object


@dataclass(frozen=True)
class ObjectInfo:
    """What a stat of an object returns."""

    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None


class ObjectStore:
    """Reads and writes objects in the S3-compatible store."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1") -> None:
        url = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        if not url.hostname:
            raise ValueError(f"bad S3 endpoint {endpoint!r}")
        self.endpoint = f"{url.scheme}://{url.netloc}"
        http = urllib3.PoolManager(
            maxsize=32,
            timeout=urllib3.Timeout(connect=5, read=60),
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.client = Minio(
            url.netloc,
            access_key=access_key,
            secret_key=secret_key,
            secure=url.scheme == "https",
            region=region,
            http_client=http,
        )

    def ensure_bucket(self, bucket: str) -> None:
        """Creates `bucket` unless it exists (safe when several replicas start at once)."""
        if self.client.bucket_exists(bucket):
            return
        try:
            self.client.make_bucket(bucket)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        """Writes `data` to bucket/key, replacing what was there."""
        self.client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type)

    def stat(self, bucket: str, key: str, version: str | None = None) -> ObjectInfo:
        """Returns an object's size and etag; InvalidS3Object when it cannot be read."""
        try:
            st = self.client.stat_object(bucket, key, version_id=version)
        except S3Error as exc:
            raise InvalidS3Object(f"cannot access s3://{bucket}/{key}: {exc.code}") from None
        except ValueError as exc:  # the client refuses a bucket or key it cannot address
            raise InvalidS3Object(f"cannot access s3://{bucket}/{key}: {exc}") from None
        return ObjectInfo(bucket, key, st.size or 0, st.etag or "", st.version_id)

    def exists(self, bucket: str, key: str) -> bool:
        """Tells whether bucket/key exists."""
        try:
            self.client.stat_object(bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"):
                return False
            raise
        return True

    def get_bytes(
        self, bucket: str, key: str, max_bytes: int | None = None, version: str | None = None
    ) -> bytes:
        """Reads a whole object; ImageTooLarge past `max_bytes`, InvalidS3Object when unreadable.

        One GET: the size limit is checked on the response's Content-Length before the body is read
        (a stat first would cost a second request per image on imports).
        """
        try:
            response = self.client.get_object(bucket, key, version_id=version)
        except S3Error as exc:
            raise InvalidS3Object(f"cannot access s3://{bucket}/{key}: {exc.code}") from None
        except ValueError as exc:  # the client refuses a bucket or key it cannot address
            raise InvalidS3Object(f"cannot access s3://{bucket}/{key}: {exc}") from None
        try:
            length = response.headers.get("Content-Length")
            if max_bytes is not None and length is not None and int(length) > max_bytes:
                raise ImageTooLarge(f"s3://{bucket}/{key} is {length} bytes; the limit is {max_bytes}")
            # Read one byte past the limit so a body longer than announced is still caught.
            data = response.read(max_bytes + 1) if max_bytes is not None else response.read()
        finally:
            response.close()
            response.release_conn()
        if max_bytes is not None and len(data) > max_bytes:
            raise ImageTooLarge(f"s3://{bucket}/{key} exceeds {max_bytes} bytes")
        return data

    def list_keys(self, bucket: str, prefix: str = "", recursive: bool = True) -> list[str]:
        """Lists the keys under `prefix`; InvalidS3Object when the bucket cannot be read."""
        try:
            return [
                o.object_name for o in self.client.list_objects(bucket, prefix=prefix, recursive=recursive)
            ]
        except S3Error as exc:
            raise InvalidS3Object(f"cannot list s3://{bucket}/{prefix}: {exc.code}") from None
        except ValueError as exc:
            raise InvalidS3Object(f"cannot list s3://{bucket}/{prefix}: {exc}") from None

    def delete(self, bucket: str, key: str) -> None:
        """Deletes bucket/key; deleting a missing object is not an error."""
        self.client.remove_object(bucket, key)
