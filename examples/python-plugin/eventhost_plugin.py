"""A small SDK for eventhost plugins written in Python.

It speaks the protocol described in docs/plugin-protocol.md: go-plugin's
handshake (magic cookie, protocol version, the line printed on stdout), AutoMTLS
with the host's certificate from PLUGIN_CLIENT_CERT, and the gRPC service of
sdk/proto/pluginv1/plugin.proto in both encodings (messages and packed).

Needs Debian's python3-grpcio, python3-protobuf and python3-cryptography. A
plugin is a class with describe(), configure(values) and handle(order, out);
its script ends with serve(MyPlugin()).
"""

import base64
import datetime
import json
import os
import signal
import struct
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc

import plugin_pb2
import plugin_pb2_grpc

# The handshake eventhost's sdk.Handshake() defines; a host with another
# protocol version refuses the plugin.
MAGIC_COOKIE_KEY = "EVENTHOST_PLUGIN"
MAGIC_COOKIE_VALUE = "7d4c1a1e-olympics-2020-purchase-orders"
PROTOCOL_VERSION = 1
CORE_PROTOCOL_VERSION = 1  # go-plugin's own
MAX_MESSAGE_BYTES = 256 << 20  # sdk.MaxMessageBytes, on both sides

# Config field types, as in plugin.proto's ConfigField.Type.
STRING, NUMBER, BOOL, STRING_LIST = 1, 2, 3, 4


class Field:
    """One attribute of the plugin's config {} block."""

    def __init__(self, name, type, default=None, required=False, doc=""):
        self.name, self.type, self.default, self.required, self.doc = name, type, default, required, doc


class FieldError(Exception):
    """A config value the plugin rejects; the host reports it at the
    attribute's file:line."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


class Permanent(Exception):
    """An order no retry can help: the host dead-letters it at once."""


class Order:
    __slots__ = ("id", "channel", "ts", "qty", "cost", "event", "who", "extra")

    def __init__(self, id, channel, ts, qty, cost, event, who, extra):
        self.id, self.channel, self.ts, self.qty, self.cost = id, channel, ts, qty, cost
        self.event, self.who, self.extra = event, who, extra


class Effects:
    """The Redis writes for one order. The host checks each against its
    allowlist and the plugin's key patterns, then applies them."""

    def __init__(self):
        self.list = []

    def add(self, command, key, *args):
        self.list.append((command, key, [str(a) for a in args]))

    def hincrby(self, key, field, n):
        self.add("HINCRBY", key, field, int(n))

    def sadd(self, key, *members):
        self.add("SADD", key, *members)

    def zincrby(self, key, incr, member):
        self.add("ZINCRBY", key, format_float(incr), member)


def format_float(f):
    """A float as the host accepts it: plain decimal, no exponent."""
    s = repr(float(f))
    if "e" in s or "E" in s:
        s = format(f, "f")
    return s[:-2] if s.endswith(".0") else s


def log(level, message, **fields):
    """A line go-plugin's host parses (hclog's JSON) and logs under the
    plugin's name."""
    rec = {"@level": level, "@message": message, "@timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    rec.update(fields)
    sys.stderr.write(json.dumps(rec) + "\n")
    sys.stderr.flush()


# --- the packed encoding (sdk/pack.go) ---------------------------------------

def _uvarint(b, i):
    shift = v = 0
    while True:
        if i >= len(b) or shift > 63:
            raise ValueError("truncated")
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            return v, i
        shift += 7


def _string(b, i):
    n, i = _uvarint(b, i)
    if i + n > len(b):
        raise ValueError("truncated")
    return b[i:i + n].decode("utf-8", "surrogateescape"), i + n


def _zigzag(u):
    return (u >> 1) ^ -(u & 1)


def unpack_orders(b):
    """Decodes ProcessRequest.packed_orders."""
    out, i = [], 0
    while i < len(b):
        oid, i = _string(b, i)
        channel, i = _string(b, i)
        ts, i = _uvarint(b, i)
        qty, i = _uvarint(b, i)
        (cost,) = struct.unpack_from("<d", b, i)
        i += 8
        event, i = _string(b, i)
        who, i = _string(b, i)
        n, i = _uvarint(b, i)
        extra = {}
        for _ in range(n):
            k, i = _string(b, i)
            extra[k], i = _string(b, i)
        out.append(Order(oid, channel, _zigzag(ts), _zigzag(qty), cost, event, who, extra))
    return out


def _put_uvarint(buf, v):
    while v >= 0x80:
        buf.append((v & 0x7F) | 0x80)
        v >>= 7
    buf.append(v)


def pack_effects(effects):
    """Encodes one order's effects for Result.packed_effects."""
    buf = bytearray()
    for command, key, args in effects:
        _put_uvarint(buf, 2 + len(args))
        for s in (command, key, *args):
            raw = s.encode("utf-8", "surrogateescape")
            _put_uvarint(buf, len(raw))
            buf += raw
    return bytes(buf)


# --- the gRPC service ---------------------------------------------------------

class _Servicer(plugin_pb2_grpc.PluginServicer):
    def __init__(self, plugin, packed):
        self.plugin, self.packed = plugin, packed

    def Describe(self, request, context):
        d = self.plugin.describe()
        resp = plugin_pb2.DescribeResponse(name=d["name"], version=d.get("version", ""), keys=d["keys"], packed=self.packed)
        for f in d.get("config", []):
            resp.config.add(name=f.name, type=f.type, required=f.required, doc=f.doc,
                            default_json="" if f.default is None else json.dumps(f.default))
        return resp

    def Configure(self, request, context):
        values = json.loads(request.config_json or "{}")
        resp = plugin_pb2.ConfigureResponse()
        try:
            self.plugin.configure(values)
        except FieldError as e:
            resp.errors.add(field=e.field, message=str(e))
        except Exception as e:  # the block as a whole
            resp.errors.add(field="", message=str(e))
        return resp

    def Process(self, request, context):
        packed = len(request.orders) == 0
        if packed:
            orders = unpack_orders(request.packed_orders)
        else:
            orders = [Order(o.id, o.channel, o.ts, o.qty, o.cost, o.event, o.who, dict(o.extra)) for o in request.orders]
        resp = plugin_pb2.ProcessResponse()
        for i, order in enumerate(orders):
            out = Effects()
            r = resp.results.add(index=i)
            try:
                self.plugin.handle(order, out)
            except Permanent as e:
                r.error, r.permanent = str(e) or "permanent error", True
                continue
            except Exception as e:
                r.error = "%s: %s" % (type(e).__name__, e)
                continue
            if packed:
                r.packed_effects = pack_effects(out.list)
            else:
                for command, key, args in out.list:
                    r.effects.add(command=command, key=key, args=args)
        return resp


def _raw_handler(fn):
    # go-plugin's own services take and return messages this plugin never
    # needs to read: it answers them with fixed bytes.
    return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=lambda b: b, response_serializer=lambda b: b)


def _server_credentials(client_cert_pem):
    """AutoMTLS: a fresh self-signed certificate for "localhost" that the host
    pins (it reads it from the handshake line), and the host's own
    certificate as the only client CA. Returns the credentials and the
    certificate's DER."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(seconds=30)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                         data_encipherment=False, key_agreement=True, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    creds = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=client_cert_pem.encode(), require_client_auth=True)
    return creds, cert.public_bytes(serialization.Encoding.DER)


def serve(plugin, packed=True):
    """Runs plugin as an eventhost plugin process until the host stops it or
    goes away. packed says whether it reads the packed encoding (it answers
    each request in the encoding the request came in)."""
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        sys.stderr.write("This is an eventhost plugin: eventhost runs it, not a person.\n")
        sys.exit(1)
    offered = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", str(PROTOCOL_VERSION)).split(",")
    if str(PROTOCOL_VERSION) not in offered:
        sys.stderr.write("the host speaks plugin protocol versions %s; this plugin speaks %d\n" % (offered, PROTOCOL_VERSION))
        sys.exit(1)

    done = threading.Event()
    opts = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=opts)
    plugin_pb2_grpc.add_PluginServicer_to_server(_Servicer(plugin, packed), server)
    server.add_generic_rpc_handlers((
        # Health/Check answers SERVING (field 1 = 1).
        grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": _raw_handler(lambda req, ctx: b"\x08\x01")}),
        # The host's Kill asks for a clean exit first.
        grpc.method_handlers_generic_handler("plugin.GRPCController", {"Shutdown": _raw_handler(lambda req, ctx: (done.set(), b"")[1])}),
    ))

    fd, path = tempfile.mkstemp(prefix="plugin", dir=os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or None)
    os.close(fd)
    os.remove(path)  # the socket is created in its place
    cert_field = ""
    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "")
    if client_cert:
        creds, der = _server_credentials(client_cert)
        server.add_secure_port("unix:" + path, creds)
        cert_field = base64.b64encode(der).decode().rstrip("=")  # RawStdEncoding
    else:
        server.add_insecure_port("unix:" + path)
    server.start()
    group = os.environ.get("PLUGIN_UNIX_SOCKET_GROUP")
    if group:
        os.chown(path, -1, int(group))
        os.chmod(path, 0o660)

    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the host's terminal is the host's to handle
    sys.stdout.write("%d|%d|unix|%s|grpc|%s\n" % (CORE_PROTOCOL_VERSION, PROTOCOL_VERSION, path, cert_field))
    sys.stdout.flush()

    parent = os.getppid()
    while not done.wait(1.0):
        if os.getppid() != parent:  # the host died without stopping us
            log("warn", "host process is gone; exiting")
            break
    server.stop(grace=1).wait()
    try:
        os.remove(path)
    except OSError:
        pass
