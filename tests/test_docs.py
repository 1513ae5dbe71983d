"""The documentation stays true: its code runs and its commands, options and gRPC requests exist.

A page's ```python blocks run in order in one Jupyter kernel (one namespace per page); its ```bash blocks whose
every command is `cityagent ...` (or `.venv/bin/cityagent ...`) run in a shell in between, in page order. Each page
runs in a fresh folder holding links to configs/ and .venv/, with the default CITYAGENT_HOME (./.cityagent) and
without MLFLOW_TRACKING_URI or RAY_ADDRESS: what a new user has after the README's install. Ports 8001 and 8002 in
code are replaced by free ones. An HTML comment on the line before a block changes how it is run:

    <!-- test: skip: REASON -->   never run (still syntax-checked); say why
    <!-- test: slow -->           run only with `-m slow`; later blocks must not depend on it
    <!-- test: background -->     a long-running `cityagent serve ... --port N`: started, awaited until the server
                                  is ready, and stopped with SIGTERM when the page is done
"""

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer.main
from google.protobuf import json_format, message_factory
from grpc_health.v1 import health_pb2

from cityagent.agent.cli import app
from cityagent.serving.proto import inference_pb2
from tests.doc_blocks import CLI, DOCS, PAGES, REPO, Block, blocks, parse_blocks, shell_commands
from tests.kernels import kernel_manager
from tests.mlflow_servers import free_port

BLOCK_TIMEOUT_S = 600
# Pages whose examples name a team's state (versions, run ids) and cannot run as written; still syntax-checked.
NOT_RUN = {
    "registry.md": "its examples use a team's registry (traffic-sz version 7, RUN_ID); tests/training covers them",
}
PORTS = ("8001", "8002")


class Page:
    """One page's run: a working folder, a kernel for its python blocks, a shell for its commands."""

    def __init__(self, tmp_path: Path):
        self.dir = tmp_path / "work"
        self.dir.mkdir()
        for name in ("configs", ".venv"):
            if (REPO / name).exists():
                (self.dir / name).symlink_to(REPO / name)
        fresh = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "RAY_ADDRESS")  # a new user's shell has none of them
        self.env = {k: v for k, v in os.environ.items() if k not in fresh}
        self.env |= {
            "CITYAGENT_HOME": str(self.dir / ".cityagent"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "MPLBACKEND": "agg",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
        self.ports = {p: str(free_port()) for p in PORTS}
        self.km = kernel_manager(tmp_path)
        self.kc = None
        self.background: list[tuple[subprocess.Popen, Path]] = []

    def code(self, block: Block) -> str:
        return re.sub(r"\b(8001|8002)\b", lambda m: self.ports[m.group(1)], block.code)

    def python(self, block: Block) -> None:
        if self.kc is None:
            self.km.start_kernel(cwd=str(self.dir), env=self.env)
            self.kc = self.km.client()
            self.kc.start_channels()
            self.kc.wait_for_ready(timeout=60)
        errors: list[str] = []

        def hook(msg: dict) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                sys.stdout.write(content["text"])
            elif kind == "error":
                errors.append("\n".join(re.sub(r"\x1b\[[0-9;]*m", "", ln) for ln in content["traceback"]))

        reply = self.kc.execute_interactive(self.code(block), timeout=BLOCK_TIMEOUT_S, output_hook=hook)
        if reply["content"]["status"] != "ok":
            pytest.fail(f"{block.where} raised:\n" + ("\n".join(errors) or reply["content"].get("evalue", "")))

    def shell(self, block: Block) -> None:
        code = self.code(block)
        if block.marker == "background":
            self.start(block, code)
            return
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
        sys.stdout.write(proc.stdout[-3000:])
        if proc.returncode:
            pytest.fail(
                f"{block.where} exited {proc.returncode}:\n{code}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
            )

    def start(self, block: Block, code: str) -> None:
        import tritonclient.grpc as tc

        (command,) = shell_commands(code)  # one long-running command per background block (ports replaced)
        port = re.search(r"--port[ =](\d+)", command)
        assert port, f"{block.where}: a background block must name its --port"
        log = self.dir / f"background-{block.line}.log"
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=self.dir,
            env=self.env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.background.append((proc, log))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"{block.where}: `{command}` exited {proc.returncode}:\n{log.read_text()[-5000:]}")
            try:
                with tc.InferenceServerClient(f"127.0.0.1:{port.group(1)}") as client:
                    if client.is_server_ready(client_timeout=2):
                        return
            except Exception:
                pass  # not listening yet
            time.sleep(0.5)
        pytest.fail(f"{block.where}: `{command}` was not ready within 120 s:\n{log.read_text()[-5000:]}")

    def close(self) -> None:
        for proc, log in self.background:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    pytest.fail(f"a background command ignored SIGTERM for 30 s:\n{log.read_text()[-3000:]}")
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km.has_kernel:
            self.km.shutdown_kernel(now=True)


def _page_params():
    for page in PAGES:
        runnable = [b for b in blocks(page) if b.runs]
        if not runnable or page.name in NOT_RUN:
            continue
        yield pytest.param(page, False, id=page.stem)
        if any(b.marker == "slow" for b in runnable):
            yield pytest.param(page, True, id=f"{page.stem}-with-slow", marks=pytest.mark.slow)


@pytest.mark.parametrize(("page", "with_slow"), _page_params())
def test_page_code_runs(page, with_slow, tmp_path):
    run = Page(tmp_path)
    try:
        for block in blocks(page):
            if not block.runs or (block.marker == "slow" and not with_slow):
                continue
            t0 = time.perf_counter()
            (run.python if block.lang == "python" else run.shell)(block)
            print(f"--- {block.where} ({block.lang}): {time.perf_counter() - t0:.1f} s")
    finally:
        run.close()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_python_blocks_compile(page):
    for block in blocks(page):
        if block.lang == "python":
            compile(block.code, block.where, "exec")


def _cli_lines(block: Block) -> list[str]:
    return [c for c in block.commands() if CLI.match(c)]


def cli_problems(block: Block) -> list[str]:
    """What is wrong with the `cityagent ...` lines of a bash block: unknown sub-commands or options."""
    root, problems = typer.main.get_command(app), []
    for line in _cli_lines(block) if block.lang == "bash" else []:
        words = shlex.split(line.replace("[", " ").replace("]", " "), comments=True)[1:]
        cmd, path = root, ["cityagent"]
        while hasattr(cmd, "commands") and words and words[0] in cmd.commands:  # a (Typer) group
            cmd = cmd.commands[words[0]]
            path.append(words.pop(0))
        if hasattr(cmd, "commands"):
            problems.append(f"{block.where}: `{line}` names no sub-command of `{' '.join(path)}`")
            continue
        known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
        for word in words:
            if word.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", word) and word.split("=")[0] not in known:
                problems.append(f"{block.where}: `{' '.join(path)}` has no option {word}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_cli_examples_name_real_commands_and_options(page):
    """Every `cityagent ...` line of every bash block, run or not, names a real sub-command and real options."""
    assert not [p for b in blocks(page) for p in cli_problems(b)]


def test_cli_check_catches_unknown_commands_and_options():
    text = "```bash\ncityagent train traffic --workers 0 --epochs 3\ncityagent modles list\ncityagent hub\n```\n"
    (block,) = parse_blocks(text, "t.md")
    problems = cli_problems(block)
    assert len(problems) == 3 and "no option --epochs" in problems[0] and "--workers" not in problems[0]
    assert "`cityagent modles list` names no sub-command" in problems[1]


GRPC_METHOD = re.compile(r"^[\w.]+\.\w+/\w+$")  # package.Service/Method


def _grpcurl_calls(page: Path) -> list[tuple[str, str | None]]:
    """(method, JSON body or None) of every grpcurl command that calls a method in the page's bash blocks."""
    calls = []
    for block in blocks(page):
        for cmd in block.commands() if block.lang == "bash" else []:
            words = shlex.split(cmd) if cmd.startswith("grpcurl") else []
            methods = [w for w in words if GRPC_METHOD.match(w)]
            if methods:
                calls.append((methods[0], words[words.index("-d") + 1] if "-d" in words else None))
    return calls


def test_grpcurl_examples_are_valid_requests():
    """grpcurl is not installed here, so check what it would send: a real method, and a body its schema accepts."""
    pools = (inference_pb2.DESCRIPTOR.pool, health_pb2.DESCRIPTOR.pool)  # the OIP stubs keep a pool of their own

    def find(service: str):
        for pool in pools:
            try:
                return pool.FindServiceByName(service)
            except KeyError:
                pass
        raise AssertionError(f"grpcurl example calls an unknown service {service}")

    calls = _grpcurl_calls(DOCS / "serving-api.md")
    assert {m.rsplit("/", 1)[1] for m, _ in calls} >= {"Check", "ServerReady", "ModelMetadata", "ModelInfer"}
    for method, body in calls:
        service, rpc = method.rsplit("/", 1)
        descriptor = find(service).methods_by_name[rpc]
        message = message_factory.GetMessageClass(descriptor.input_type)()
        if body not in (None, "@"):  # @ reads the body from stdin (a file written by a tested python block)
            json_format.Parse(body, message)  # raises on unknown fields or wrong types


def test_markers_parse():
    text = "x\n<!-- test: skip: needs a cluster -->\n```bash\nray start --head\n```\n\n```bash\ncityagent demo\n```\n"
    skip, cli = parse_blocks(text, "t.md")
    assert (skip.marker, skip.reason, skip.runs) == ("skip", "needs a cluster", False)
    assert (cli.marker, cli.is_cli, cli.runs, cli.line) == (None, True, True, 7)
    assert cli.where == "docs/t.md:7" and cli.commands() == ["cityagent demo"]
