"""The anaconda.org API, as far as uploading clients use it, under ``/api/anaconda/``."""
