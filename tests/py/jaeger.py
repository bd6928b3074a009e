"""jaeger.py -- a real Jaeger (v2 all-in-one, in-memory) for the tests that read the services' spans.

    from jaeger import Jaeger

    with Stack() as st:
        j = Jaeger(st, cors_origins=["http://127.0.0.1:3000"])   # Skip when Jaeger is not built
        order = st.service("order", env=j.env(TRACES_QUERY_URL=j.query_url))
        spans = j.trace(trace_id, 13)          # waits until the trace has 13 spans

The binary is JAEGER_BIN, else what scripts/jaeger.sh path prints; without
either, Skip says how to build it. Jaeger listens on free ports (free_port(),
so TEST_PORTS confines them): OTLP over HTTP for the services (endpoint),
the query API for the tests and the dashboard (query_url), with the project's
scripts/jaeger/config.yaml. cors_origins: the dashboard's origin, whose port
(DASHBOARD_PORT) the configuration lets read the query API as
http://localhost:<port> and http://127.0.0.1:<port>. Its
process joins st.procs, so the stack stops it with the rest.
"""
import os
import subprocess
from urllib.parse import urlsplit

import harness
from harness import ROOT, Skip, http



def jaeger_binary() -> str:
    """Jaeger's all-in-one, as scripts/jaeger.sh built it (JAEGER_BIN overrides)."""
    if os.environ.get("JAEGER_BIN"):
        return os.environ["JAEGER_BIN"]
    script = ROOT / "scripts" / "jaeger.sh"
    r = subprocess.run([str(script), "path"], capture_output=True, text=True) \
        if script.exists() else None
    if not r or r.returncode != 0:
        raise Skip("Jaeger is not built (run scripts/jaeger.sh build; scripts/setup.sh does)")
    return r.stdout.strip()


class Jaeger:
    """A Jaeger all-in-one on free ports, in-memory; st is anything with tmp (a folder for
    its config and log) and procs (a list of processes stopped together, as Stack's)."""

    def __init__(self, st, cors_origins=()):
        binary = jaeger_binary()
        self.otlp, self.query = harness.free_port(), harness.free_port()
        # the project's own configuration (scripts/jaeger/config.yaml), its addresses
        # from the environment; its CORS origins are a dashboard port's two names
        env = dict(os.environ, JAEGER_HOST="127.0.0.1", JAEGER_OTLP_PORT=str(self.otlp),
                   JAEGER_PORT=str(self.query), JAEGER_LOG_LEVEL="warn")
        ports = {urlsplit(o).port for o in cors_origins}
        if len(ports) > 1:
            raise ValueError(f"one dashboard port only: {cors_origins}")
        if ports:
            env["DASHBOARD_PORT"] = str(ports.pop())
        self.proc = harness.Proc(f"jaeger-{self.otlp}", [binary, "--config",
                                 ROOT / "scripts" / "jaeger" / "config.yaml"], env, st.tmp)
        st.procs.append(self.proc)
        self.endpoint = f"http://127.0.0.1:{self.otlp}"
        self.query_url = f"http://127.0.0.1:{self.query}"
        self.start()

    def start(self):
        self.proc.start()
        harness.wait_until(lambda: self.proc.popen.poll() is not None or
                           (self.answers() and harness.port_open(self.otlp)), 60,
                           "Jaeger's query API and OTLP receiver")
        if self.proc.popen.poll() is not None:
            raise RuntimeError(f"Jaeger exited with {self.proc.popen.returncode}:\n{self.proc.log()[-2000:]}")
        return self

    def answers(self) -> bool:
        try:
            return http("GET", f"{self.query_url}/api/services", timeout=2).status == 200
        except OSError:
            return False

    def env(self, **more):
        """The services' settings for this collector, sending every 100 ms."""
        e = {"OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        e.update({k: str(v) for k, v in more.items()})
        return e

    def spans(self, trace_id):
        """The trace's spans as Jaeger's query API gives them ([] when unknown), each
        with its service name in "service" and tags and references made dicts."""
        r = http("GET", f"{self.query_url}/api/traces/{trace_id}", timeout=5)
        if r.status == 404:
            return []
        if r.status != 200:
            raise AssertionError(f"Jaeger's /api/traces: {r}")
        data = r.json().get("data") or []
        out = []
        for t in data:
            for s in t["spans"]:
                s["service"] = t["processes"][s["processID"]]["serviceName"]
                s["tags"] = {x["key"]: x["value"] for x in s.get("tags", [])}
                s["parent"] = next((x["spanID"] for x in s.get("references", [])
                                    if x["refType"] == "CHILD_OF"), None)
                s["events"] = [{f["key"]: f["value"] for f in log["fields"]}
                               for log in s.get("logs", [])]
                out.append(s)
        return out

    def trace(self, trace_id, count, timeout=20.0):
        """Waits until the trace has count spans (its spans)."""
        return harness.wait_until(lambda: (lambda s: s if len(s) >= count else None)(
            self.spans(trace_id)), timeout, f"{count} spans of trace {trace_id} in Jaeger")
