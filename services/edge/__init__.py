"""The HTTP edge: Rekognition's AWS JSON 1.1 protocol over the gRPC services (see app.py)."""
