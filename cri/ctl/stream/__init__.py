"""podwire-ctl's side of CRI streaming: the URL that Exec, Attach and PortForward return is
upgraded to SPDY/3.1 (upgrade.py), then spoken as the Kubernetes remotecommand protocol
(remotecommand.py, with terminal.py for -t) or the port-forward protocol (portforward.py).
The SPDY framing and session are the server's own (cri/streaming/spdy_session.py), in the
client role.  Local file descriptors are read and written through fdio.py."""


class StreamClientError(Exception):
    """A session could not be set up or broke; the message is for the user."""
