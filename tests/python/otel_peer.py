"""The non-Rust side of observe's OpenTelemetry tests, built on the official Python
OpenTelemetry packages (opentelemetry-proto, opentelemetry-sdk).

    otel_peer.py receiver OUT.jsonl
        Serves on 127.0.0.1 (a free port, printed as "PORT <n>" on stdout):
        - POST /v1/traces: an OTLP/HTTP protobuf ExportTraceServiceRequest, decoded with
          the official protobuf definitions; one JSON line per span is appended to OUT;
        - POST /v1/metrics: an OTLP/HTTP protobuf ExportMetricsServiceRequest; one JSON
          line {"metric": name, "kind", "points": [{attributes, value | count, sum,
          bucket_counts, explicit_bounds}]} per metric is appended to OUT;
        - GET /downstream: a downstream service; the W3C context of the request is
          extracted with the Python SDK's propagator and one JSON line
          {"downstream": {trace_id, parent_span_id}} is appended to OUT.
        - POST /v1/logs: an OTLP/HTTP protobuf ExportLogsServiceRequest; one JSON line
          {"log": body, "severity", "severity_text", "trace_id", "span_id", "target",
          "service_name"} per log record is appended to OUT.
        A request with `Content-Encoding: gzip` is decompressed first (and recorded
        as {"gzip": path}).
    otel_peer.py grpc-receiver OUT.jsonl
        An OTLP/gRPC TraceService, LogsService and MetricsService on 127.0.0.1 (a free port, printed as
        "PORT <n>"), decoding with the official definitions and generated gRPC stubs; one
        JSON line per span or log record, as above, with the request's `x-api-key`
        metadata and {"grpc_encoding": ...} when the request was compressed.
    Both receivers take TLS options after OUT: `--tls CERT KEY` serves TLS with that
    certificate, `--client-ca CA` also requires a client certificate signed by CA
    (mTLS).
    otel_peer.py client URL
        Starts a span with the Python SDK, injects its context with the SDK's propagator
        into a GET of URL, and prints {"trace_id", "span_id", "status", "body"}.
"""

import json
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def span_record(span, resource, api_key):
    """One exported span, as the tests read it."""
    return {
        "name": span.name,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "kind": span.kind,
        "status": span.status.code,
        "service_name": resource.get("service.name"),
        "api_key": api_key,
    }


def log_record(record, resource, scope, api_key):
    """One exported log record, as the tests read it."""
    attributes = {a.key: a.value.string_value for a in record.attributes}
    return {
        "log": record.body.string_value,
        "severity": record.severity_number,
        "severity_text": record.severity_text,
        "trace_id": record.trace_id.hex(),
        "span_id": record.span_id.hex(),
        "target": scope or attributes.get("target", ""),
        "attributes": attributes,
        "service_name": resource.get("service.name"),
        "api_key": api_key,
    }


def metric_records(request):
    """One JSON-ready record per metric of an ExportMetricsServiceRequest."""
    for rm in request.resource_metrics:
        resource = {a.key: a.value.string_value for a in rm.resource.attributes}
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                points = []
                for p in getattr(m, kind).data_points:
                    point = {a.key: a.value.string_value for a in p.attributes}
                    if kind == "histogram":
                        point.update(
                            count=p.count,
                            sum=p.sum,
                            bucket_counts=list(p.bucket_counts),
                            explicit_bounds=list(p.explicit_bounds),
                        )
                    elif kind in ("sum", "gauge"):
                        point["value"] = (
                            p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                        )
                    points.append(point)
                record = {
                    "metric": m.name,
                    "kind": kind,
                    "unit": m.unit,
                    "scope": sm.scope.name,
                    "resource": resource,
                    "points": points,
                }
                if kind == "sum":
                    record["monotonic"] = m.sum.is_monotonic
                yield record


def tls_options(args):
    """(cert, key, client_ca) from `--tls CERT KEY [--client-ca CA]`."""
    cert = key = client_ca = None
    if "--tls" in args:
        i = args.index("--tls")
        cert, key = args[i + 1], args[i + 2]
    if "--client-ca" in args:
        client_ca = args[args.index("--client-ca") + 1]
    return cert, key, client_ca


def receiver(out_path, args):
    import gzip
    import ssl

    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    from opentelemetry import trace

    lock = threading.Lock()

    def append(record):
        with lock, open(out_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, message):
            body = message.SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
                append({"gzip": self.path})
            if self.path == "/v1/metrics":
                self.metrics(body)
                return
            if self.path == "/v1/logs":
                self.logs(body)
                return
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            for rs in request.resource_spans:
                resource = {
                    a.key: a.value.string_value for a in rs.resource.attributes
                }
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        append(span_record(span, resource, self.headers.get("x-api-key")))
            self.reply(trace_service_pb2.ExportTraceServiceResponse())

        def logs(self, body):
            request = logs_service_pb2.ExportLogsServiceRequest()
            request.ParseFromString(body)
            for rl in request.resource_logs:
                resource = {a.key: a.value.string_value for a in rl.resource.attributes}
                for sl in rl.scope_logs:
                    for record in sl.log_records:
                        append(
                            log_record(record, resource, sl.scope.name, self.headers.get("x-api-key"))
                        )
            self.reply(logs_service_pb2.ExportLogsServiceResponse())

        def metrics(self, body):
            request = metrics_service_pb2.ExportMetricsServiceRequest()
            request.ParseFromString(body)
            for record in metric_records(request):
                append(record)
            self.reply(metrics_service_pb2.ExportMetricsServiceResponse())

        def do_GET(self):
            if self.path != "/downstream":
                self.send_error(404)
                return
            carrier = {k.lower(): v for k, v in self.headers.items()}
            ctx = TraceContextTextMapPropagator().extract(carrier)
            sc = trace.get_current_span(ctx).get_span_context()
            append(
                {
                    "downstream": {
                        "valid": sc.is_valid,
                        "trace_id": format(sc.trace_id, "032x"),
                        "parent_span_id": format(sc.span_id, "016x"),
                    }
                }
            )
            body = b"downstream ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            # A refused TLS handshake (wrong CA, no client certificate) is the test's
            # point, not a receiver failure: recorded, not printed.
            append({"tls_error": str(sys.exc_info()[1])})

    server = Server(("127.0.0.1", 0), Handler)
    cert, key, client_ca = tls_options(args)
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        if client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
        # Handshakes happen per connection, in the handler threads.
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


def grpc_receiver(out_path, args):
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    lock = threading.Lock()

    def write(records, metadata):
        with lock, open(out_path, "a", encoding="utf-8") as f:
            if metadata.get("grpc-encoding", "identity") != "identity":
                f.write(json.dumps({"grpc_encoding": metadata["grpc-encoding"]}) + "\n")
            for record in records:
                f.write(json.dumps(record) + "\n")

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            metadata = dict(context.invocation_metadata())
            write(
                [
                    span_record(span, {a.key: a.value.string_value for a in rs.resource.attributes}, metadata.get("x-api-key"))
                    for rs in request.resource_spans
                    for ss in rs.scope_spans
                    for span in ss.spans
                ],
                metadata,
            )
            return trace_service_pb2.ExportTraceServiceResponse()

    class Logs(logs_service_pb2_grpc.LogsServiceServicer):
        def Export(self, request, context):
            metadata = dict(context.invocation_metadata())
            write(
                [
                    log_record(record, {a.key: a.value.string_value for a in rl.resource.attributes}, sl.scope.name, metadata.get("x-api-key"))
                    for rl in request.resource_logs
                    for sl in rl.scope_logs
                    for record in sl.log_records
                ],
                metadata,
            )
            return logs_service_pb2.ExportLogsServiceResponse()

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request, context):
            metadata = dict(context.invocation_metadata())
            records = list(metric_records(request))
            for record in records:
                record["api_key"] = metadata.get("x-api-key")
            write(records, metadata)
            return metrics_service_pb2.ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
    cert, key, client_ca = tls_options(args)
    if cert:
        with open(cert, "rb") as c, open(key, "rb") as k:
            pair = (k.read(), c.read())
        root = None
        if client_ca:
            with open(client_ca, "rb") as ca:
                root = ca.read()
        credentials = grpc.ssl_server_credentials(
            [pair], root_certificates=root, require_client_auth=bool(client_ca)
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    server.wait_for_termination()


def client(url):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    trace.set_tracer_provider(TracerProvider())
    tracer = trace.get_tracer("observe-interop")
    with tracer.start_as_current_span("python client") as span:
        headers = {}
        TraceContextTextMapPropagator().inject(headers)
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, body = resp.status, resp.read().decode()
        sc = span.get_span_context()
        print(
            json.dumps(
                {
                    "trace_id": format(sc.trace_id, "032x"),
                    "span_id": format(sc.span_id, "016x"),
                    "status": status,
                    "body": body,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    if sys.argv[1] == "receiver":
        receiver(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "grpc-receiver":
        grpc_receiver(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "client":
        client(sys.argv[2])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
