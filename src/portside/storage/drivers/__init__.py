"""Storage drivers shipped with Portside; importing this package registers each with the driver factory."""

from portside.storage.drivers import azure, filesystem, gcs, inmemory, s3

__all__ = ["azure", "filesystem", "gcs", "inmemory", "s3"]
