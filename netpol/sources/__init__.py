"""Where policies come from besides the API: a watched directory and the Kubernetes API."""
