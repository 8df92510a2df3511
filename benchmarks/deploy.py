"""Benchmark of `mlgitops deploy` against the local fake API server.

Measures (1) the deploy command's own overhead per deploy: rendering from Git objects, pinning
the image's digest (a HEAD to a local `docker-registry`, when installed), the lock, the dry-run
validation, the server-side apply, the pod check and the history write, i.e. all but the wait
for pods, whose length is the cluster's business; (2) the time from `git revert` of a model
commit to the Deployment naming the previous image again, and to that rollout being complete;
(3) the image builds on that rollback path (must be 0); (4) a failed rollout's automatic
rollback, which must restore the previous digest; (5) the wall time of the CLI as a fresh
process.

Run from the project root: `.venv/bin/python benchmarks/deploy.py [--rounds N]`.
The last output line holds the figures as key=value pairs.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlgitops.deploy.deploy import DeployReport, Settings, deploy  # noqa: E402
from mlgitops.deploy.images import RegistryAccess  # noqa: E402
from mlgitops.errors import RolloutFailedError  # noqa: E402
from tests.mlgitops.deploy.helpers import (  # noqa: E402
    DEPLOYMENT,
    GitOpsRepo,
    credentials_secret,
    make_repo,
    release_for,
)
from tests.support.fake_kube import FakeKubeServer  # noqa: E402
from tests.support.registry import LocalRegistry, local_registry, push_test_image  # noqa: E402

TARGET_OVERHEAD_S = 2.0
NAMESPACE = "mlgitops-staging"
BUILD_TOOLS = {"buildah", "bentoml", "podman", "docker", "dvc"}


class ProcessRecorder:
    """Records every program started through subprocess while installed."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self._real = subprocess.Popen

    def __enter__(self) -> ProcessRecorder:
        recorder = self

        class Recording(self._real):  # type: ignore[misc, valid-type, name-defined]
            def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
                first = args[0] if isinstance(args, list | tuple) else str(args).split()[0]
                recorder.commands.append(Path(str(first)).name)
                super().__init__(args, *rest, **kwargs)

        subprocess.Popen = Recording  # type: ignore[misc]
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.Popen = self._real  # type: ignore[misc]

    @property
    def builds(self) -> int:
        return sum(1 for c in self.commands if c in BUILD_TOOLS)


def image_of(fake: FakeKubeServer) -> str | None:
    obj = fake.get_object("deployments", "fraud-detector", NAMESPACE)
    if obj is None:
        return None
    return obj["spec"]["template"]["spec"]["containers"][0]["image"]


class Models:
    """Commits model releases; with a registry, pushes their images first (the nodes of the
    fake cluster see the same digests), so deploys pin them."""

    def __init__(self, repo: GitOpsRepo, fake: FakeKubeServer, registry: LocalRegistry | None):
        self.repo, self.fake, self.registry = repo, fake, registry
        self.digests: dict[str, str] = {}

    def image(self, model: str) -> str:
        if self.registry is None:
            return release_for(model).image
        return f"{self.registry.host}/mlgitops/{DEPLOYMENT}:{release_for(model).bento_version}"

    def commit(self, model: str) -> str:
        image = self.image(model)
        if self.registry is not None:
            tag = release_for(model).bento_version
            pushed = push_test_image(self.registry, f"mlgitops/{DEPLOYMENT}", tag, model)
            self.fake.registry.push(pushed.reference, pushed.digest, pushed.config)
            self.digests[model] = pushed.digest
        return self.repo.commit_model(model, image)


def phases_line(report: DeployReport) -> str:
    return "  ".join(f"{k}={v * 1000:.0f}ms" for k, v in report.timings.phases.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="deploys of new models to time")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="mlgitops-bench-"))
        fake = stack.enter_context(FakeKubeServer())
        registry = None
        if shutil.which("docker-registry"):
            registry = stack.enter_context(local_registry(Path(tmp) / "registry"))
        fake.put_object(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE},
             "status": {"phase": "Active"}}
        )  # fmt: skip
        fake.put_object(credentials_secret(NAMESPACE))  # the pods mount it (docs/deploy.md)
        repo: GitOpsRepo = make_repo(Path(tmp) / "repo")
        models = Models(repo, fake, registry)
        access = RegistryAccess(tls_verify=False, require_digest=registry is not None)
        settings = Settings(
            allow_unverified=True,  # unsigned fixture releases
            repo=repo.path,
            kubeconfig=fake.kubeconfig_path,
            timeout=60,
            registry=access,
        )
        print(f"registry: {registry.host if registry else 'none (docker-registry missing): tags'}")

        # Cold: the first deploy pays imports, discovery and object creation.
        models.commit("m0")
        cold = deploy("staging", settings=settings)
        print(f"first deploy (cold): overhead {cold.timings.overhead:.3f}s  {phases_line(cold)}")

        overheads, waits, totals = [], [], []
        phase_samples: dict[str, list[float]] = {}
        for i in range(1, args.rounds + 1):
            models.commit(f"m{i}")
            report = deploy("staging", settings=settings)
            overheads.append(report.timings.overhead)
            waits.append(report.timings.phases.get("wait", 0.0))
            totals.append(report.timings.total)
            for k, v in report.timings.phases.items():
                phase_samples.setdefault(k, []).append(v)
        print(f"\nnew-model deploys: {args.rounds}")
        for k, values in phase_samples.items():
            print(f"  {k:<10} median {statistics.median(values) * 1000:7.1f} ms"
                  f"  max {max(values) * 1000:7.1f} ms")  # fmt: skip
        overhead_median, overhead_max = statistics.median(overheads), max(overheads)
        share = overhead_max / TARGET_OVERHEAD_S
        print(f"  overhead   median {overhead_median:.3f} s  max {overhead_max:.3f} s "
              f"(target < {TARGET_OVERHEAD_S} s; {share:.0%} of it)")  # fmt: skip
        print(f"  wait       median {statistics.median(waits):.3f} s (fake pods: ready after "
              f"{fake.controller.ready_delay} s)")  # fmt: skip
        resolve_median = statistics.median(phase_samples["resolve"])
        resolve_share = resolve_median / overhead_median
        print(f"  pinning the digest: {resolve_median * 1000:.1f} ms, {resolve_share:.1%} of the "
              "overhead")  # fmt: skip

        # git revert of the last model commit, then deploy: the previous image, nothing built.
        model_commit = repo.git("rev-parse", "HEAD")
        previous_model = f"m{args.rounds - 1}"
        previous_image = models.image(previous_model)
        seen: dict[str, float] = {}
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                if (image_of(fake) or "").split("@")[0] == previous_image and "image" not in seen:
                    seen["image"] = time.perf_counter()
                time.sleep(0.001)

        watcher = threading.Thread(target=watch, daemon=True)
        modules_before = {m for m in sys.modules if m.startswith(("mlgitops.image", "bentoml"))}
        with ProcessRecorder() as recorder:
            watcher.start()
            start = time.perf_counter()
            repo.revert(model_commit)
            revert_report = deploy("staging", settings=settings)
            done = time.perf_counter()
            stop.set()
            watcher.join()
        imported = {m for m in sys.modules if m.startswith(("mlgitops.image", "bentoml"))}
        builds = recorder.builds + len(imported - modules_before)
        revert_to_image = seen.get("image", done) - start
        revert_to_done = done - start
        print(f"\ngit revert + deploy: Deployment names the old image after {revert_to_image:.3f}"
              f" s, rollout complete after {revert_to_done:.3f} s")  # fmt: skip
        print(f"  programs run: {sorted(set(recorder.commands))}; image builds: {builds}")
        print(f"  phases: {phases_line(revert_report)}")

        # A failing rollout and its automatic rollback.
        models.commit("broken")
        fake.fail_image(models.image("broken"))
        pinned_before = image_of(fake)
        start = time.perf_counter()
        try:
            deploy("staging", settings=settings)
            auto_ok = False
        except RolloutFailedError:
            # The previous model at the very digest it ran before, not what its tag names now.
            auto_ok = image_of(fake) == pinned_before
        auto_rollback_s = time.perf_counter() - start
        fake.heal_images()
        print(f"\nfailed rollout -> automatic rollback: {auto_rollback_s:.3f} s, "
              f"previous image running again: {auto_ok}")  # fmt: skip

        # The CLI as a fresh process (interpreter start and imports included), a no-op deploy.
        repo.revert(repo.git("rev-parse", "HEAD"))
        cli = [sys.executable, "-m", "mlgitops", "deploy", "--env", "staging",
               "--repo", str(repo.path), "--kubeconfig", str(fake.kubeconfig_path),
               "--no-registry-tls-verify", "--allow-unverified"]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(cli, capture_output=True, text=True, check=False)
        cli_wall = time.perf_counter() - start
        print(f"\nCLI process, deploy: {cli_wall:.3f} s wall (exit {proc.returncode})")
        print("  " + (proc.stderr.strip().splitlines() or ["?"])[-1])

    figures = {
        "deploy_overhead_s": f"{overhead_median:.3f}",
        "deploy_overhead_max_s": f"{overhead_max:.3f}",
        "deploy_overhead_target_s": f"{TARGET_OVERHEAD_S:.1f}",
        "overhead_within_target": str(overhead_max < TARGET_OVERHEAD_S).lower(),
        "first_deploy_overhead_s": f"{cold.timings.overhead:.3f}",
        "rollout_wait_s": f"{statistics.median(waits):.3f}",
        "revert_to_old_image_s": f"{revert_to_image:.3f}",
        "revert_to_rollout_complete_s": f"{revert_to_done:.3f}",
        "image_builds_on_rollback": str(builds),
        "auto_rollback_s": f"{auto_rollback_s:.3f}",
        "auto_rollback_ok": str(auto_ok).lower(),
        "cli_process_wall_s": f"{cli_wall:.3f}",
        "resolve_digest_s": f"{resolve_median:.3f}",
        "resolve_share_of_overhead": f"{resolve_share:.3f}",
        "digest_pinned": str("@sha256:" in (pinned_before or "")).lower(),
        "rounds": str(args.rounds),
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    return 0 if overhead_max < TARGET_OVERHEAD_S and builds == 0 and auto_ok else 1


if __name__ == "__main__":
    sys.exit(main())
