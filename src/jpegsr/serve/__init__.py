"""`jpegsr serve`: a local web page and HTTP API over the same upscaling as the CLI.

Needs the optional extra ``pip install "jpegsr[serve]"`` (FastAPI, uvicorn, python-multipart).
"""
