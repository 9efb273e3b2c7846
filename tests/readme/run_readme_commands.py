#!/usr/bin/python3
"""Runs every shell command of README.md, in order, as a new user would type it.

The README's commands name a user's files: NVIDIA's pickle, models/ffhq.h5, OpenAI's ViT-B-32.pt, e4e's
checkpoint, FFHQ's images, photos, /srv/feu, a publisher's URL, a Redis host. This test builds a sandbox
in which each of those names holds a small stand-in (STAND_INS below: the embedded default's random
generator written as an NVlabs pickle, the parity fixture's OpenAI-format CLIP archive, real photos from
../shared/faces, ...), then runs each command with bash in the sandbox and requires exit status 0.

The commands run as written. The only changes are the ones listed here, each with its reason:
SIZE_DOWN (options that size real work down to the small models), ADDRESSES (hosts and paths of other
machines mapped to this one) and NOT_RUN (commands that cannot run inside the test suite). A command that
this file does not know still runs, so a README command that stops working fails this test.
"""

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import h5py
import yaml

parser = argparse.ArgumentParser()
parser.add_argument("--repo", required=True, help="source tree (README.md, configs/, scripts/)")
parser.add_argument("--bin", required=True, help="build/bin with feu, feu-daemon, feu-indexer, bench_*")
parser.add_argument("--shared", required=True, help="../shared (parity fixtures, faces, CLIP vocabulary)")
parser.add_argument("--keep", action="store_true", help="keep the sandbox")
args = parser.parse_args()
REPO = os.path.abspath(args.repo)
BIN = os.path.abspath(args.bin)
SHARED = os.path.abspath(args.shared)

# Real work sized down to the embedded default's small models (README line text -> appended options).
SIZE_DOWN = [
    ("feu-indexer directions", " --images 1 --quiet", "Δi over 100 images per channel: 1 suffices to run"),
    ("feu-indexer stats", " --samples 2000", "100,000 mapping samples by default"),
    ("build/bin/bench_daemon", "", "FEU_BENCH_EDITS_1/8 set below: a few edits per client"),
]
# Values only a real-size model accepts (README text -> text here).
REPLACE = [
    ("--size 256", "--size 32", "a preview size must be below the generator's side (64 here)"),
]
BENCH_ENV = {"FEU_BENCH_EDITS_1": "3", "FEU_BENCH_EDITS_8": "1"}
# Commands not run here, by a distinctive part of their text.
NOT_RUN = {
    "sudo apt-get install": "installs Debian packages (scripts/install-deps.sh has, before any test)",
    "scripts/test.sh": "the test command itself (.ci/run runs it)",
    "feu-indexer demo-assets --out out/demo": "scripts/demo.sh above ran this command into out/demo",
    "demo-assets --out out/bench-real --real-size": "1.3 GB of real-size benchmark assets",
    "FEU_BENCH_CONFIG=configs/bench-real-size.yaml": "a real-size benchmark (minutes on 2 cores)",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def strip_comment(line):
    """Drops a trailing '# ...' that is outside quotes (shell comments in the README)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def readme_commands(path):
    """(line number, command) for each command of the README's ```sh blocks."""
    commands, block, pending, start = [], False, "", 0
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if line.startswith("```"):
                block = line.strip() in ("```sh", "```bash") if not block else False
                continue
            if not block:
                continue
            if not pending:
                start = number
            text = strip_comment(line)
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            text = (pending + text).strip()
            pending = ""
            if text:
                commands.append((start, text))
    return commands


class Sandbox:
    def __init__(self, root):
        self.root = root
        self.background = []
        self.env = dict(os.environ, PATH=os.path.join(root, "build/bin") + os.pathsep + os.environ["PATH"])
        self.addresses = {}

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def run(self, command, timeout=600, env=None, check=True):
        result = subprocess.run(["bash", "-c", command], cwd=self.root, env=env or self.env, timeout=timeout,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if check and result.returncode != 0:
            raise RuntimeError("exit %d: %s\n%s" % (result.returncode, command, result.stdout[-4000:]))
        return result

    def start(self, argv, log_name):
        log = open(self.path(log_name), "w")
        proc = subprocess.Popen(argv, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.background.append((proc, log_name))
        return proc

    def stop_all(self):
        for proc, _ in self.background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in self.background:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.background = []


def wait_for(predicate, what, seconds=120, proc=None, log=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s: the process exited (%d):\n%s" % (what, proc.returncode, open(log).read()[-3000:]))
        time.sleep(0.1)
    raise RuntimeError("%s: not ready after %d s" % (what, seconds))


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def build_stand_ins(box):
    """The files the README's commands name, made small (see the module docstring)."""
    demo = box.path("stand-ins/demo")
    # Only its generator and e4e are used: the corpus and Δi are the README's own commands' work.
    box.run("%s/feu-indexer demo-assets --quiet --out %s --images 10 --stats-samples 500 --direction-images 1"
            % (BIN, demo), timeout=900)
    os.makedirs(box.path("build"))
    os.symlink(BIN, box.path("build/bin"))
    os.makedirs(box.path("configs"))
    for name in ("ffhq.yaml", "demo.yaml"):
        shutil.copy(os.path.join(REPO, "configs", name), box.path("configs", name))
    # Random fs3 rows correlate with nothing: a fixed β (0.15) can keep no channel, so the production
    # example's config edits with β auto here (the same substitution configs/bench-real-size.yaml makes).
    with open(box.path("configs/ffhq.yaml")) as f:
        text = f.read()
    text = re.sub(r"(?m)^(\s*)beta: 0\.15\b.*$", r"\1beta: auto", text)
    text = re.sub(r"(?m)^(\s*k_(pos|neg)): 100\b", r"\1: 20", text)  # the stand-in corpus has 120 faces
    with open(box.path("configs/ffhq.yaml"), "w") as f:
        f.write(text)

    # NVIDIA's pickle: the demo generator's weights as an NVlabs network pickle.
    sys.path.insert(0, os.path.join(REPO, "tests/stylegan2"))
    from nvlabs_pickle import write_nvlabs_pickle
    with h5py.File(os.path.join(demo, "models/generator.h5"), "r") as f:
        weights = {k: f["weights/" + k][()] for k in f["weights"].keys()}
        a = f.attrs
        kwargs = dict(z_dim=int(a["z_dim"]), c_dim=0, w_dim=int(a["w_dim"]),
                      img_resolution=int(a["img_resolution"]), img_channels=int(a["img_channels"]),
                      mapping_kwargs=dict(num_layers=int(a["mapping_num_layers"])), synthesis_kwargs={})
        lr = float(a["lr_multiplier"])
    write_nvlabs_pickle(weights, kwargs, box.path("stylegan2-ffhq-config-f.pkl"), lr_multiplier=lr)

    # OpenAI's CLIP archive and vocabulary: the parity fixture's small random CLIP in the released format.
    os.makedirs(box.path("models"), exist_ok=True)
    shutil.copy(os.path.join(SHARED, "parity/clip_small.pt"), box.path("models/ViT-B-32.pt"))
    shutil.copy(os.path.join(SHARED, "clip/bpe_simple_vocab_16e6.txt.gz"), box.path("models"))
    # e4e's checkpoint: the embedded default's e4e (HDF5, told apart from torch.save zips by content) at
    # the generator's style count.
    shutil.copy(os.path.join(demo, "models/e4e.h5"), box.path("models/e4e_ffhq_encode.pt"))
    # FFHQ: faces of the same generator, in FFHQ's 00000/00000.png layout; made after the converter runs.
    # Photos: real faces (2008_002506.jpg has three).
    faces = os.path.join(SHARED, "faces")
    for name, source in (("photo.jpg", "Tom_Cruise_avp_2014_4.jpg"), ("photo1.jpg", "2008_001009.jpg"),
                         ("photo2.png", "astronaut.png"), ("group.jpg", "2008_002506.jpg"),
                         ("IMG_0042.jpg", "Tom_Cruise_avp_2014_4.jpg")):
        shutil.copy(os.path.join(faces, source), box.path(name))
    with open(box.path("edits.txt"), "w") as f:
        f.write("# one instruction per line\nblond hair\nsmiling\n")
    # The production config reads artifacts from ../artifacts: the README publishes to /srv/feu.
    os.makedirs(box.path("srv/feu"))
    os.symlink(box.path("srv/feu"), box.path("artifacts"))


def make_corpus(box):
    out = box.path("ffhq/images1024x1024/00000")
    box.run("build/bin/feu-indexer generate --generator models/ffhq.h5 --seeds 100-219 --outdir %s" % out)
    for i, name in enumerate(sorted(os.listdir(out))):
        os.rename(os.path.join(out, name), os.path.join(out, "%05d.png" % i))


def fleet_config(box, readme_text, redis_port, front_port):
    """fleet.yaml: the production example's config with the README's queue section, on this machine."""
    queue_block = re.search(r"```yaml\n(daemon:\n\s+queue:.*?)```", readme_text, re.S).group(1)
    queue = yaml.safe_load(queue_block)["daemon"]["queue"]
    queue["url"] = re.sub(r"redis://[^/]+/", "redis://127.0.0.1:%d/" % redis_port, queue["url"])
    with open(box.path("configs/ffhq.yaml")) as f:
        config = yaml.safe_load(f.read().replace("../", ""))
    config["daemon"].update(queue=queue, bind="tcp://127.0.0.1:%d" % front_port)
    config["daemon"]["journal_dir"] = "fleet-state"
    with open(box.path("fleet.yaml"), "w") as f:
        yaml.safe_dump(config, f)


def main():
    readme = os.path.join(REPO, "README.md")
    with open(readme, encoding="utf-8") as f:
        readme_text = f.read()
    commands = readme_commands(readme)
    assert len(commands) > 20, "found only %d README commands: has the README's format changed?" % len(commands)
    root = tempfile.mkdtemp(prefix="feu-readme-")
    box = Sandbox(root)
    failures, ran, skipped = [], 0, []
    publisher = redis = daemon_endpoint = None
    fleet_front_port = None
    try:
        build_stand_ins(box)
        for number, command in commands:
            where = "README.md:%d: %s" % (number, command)
            reason = next((why for key, why in NOT_RUN.items() if key in command), None)
            if reason:
                skipped.append((where, reason))
                continue
            text = command
            # A cron line: the schedule's five fields, then the command.
            text = re.sub(r"^([0-9*/,-]+\s+){5}", "", text)
            for key, extra, _ in SIZE_DOWN:
                if key in text:
                    text += extra
            for old, new, _ in REPLACE:
                text = text.replace(old, new)
            # The project's scripts run from the source tree (demo.sh builds there).
            text = re.sub(r"(^|\s)scripts/", lambda m: m.group(1) + os.path.join(REPO, "scripts") + "/", text)
            # A Slurm array: every task, one after the other.
            if "${SLURM_ARRAY_TASK_ID}" in text:
                text = "for SLURM_ARRAY_TASK_ID in 1 2 3 4 5 6 7 8; do %s || exit 1; done" % text
            env = dict(box.env)
            if "bench_daemon" in text:
                env.update(BENCH_ENV)
            if "scripts/demo.sh" in text:
                env.update(FEU_BUILD_DIR=os.path.dirname(BIN), FEU_DEMO_DIR=box.path("out/demo"),
                           FEU_HTTP="127.0.0.1:%d" % free_port())
            # Another machine's paths and hosts, on this one.
            if "https://artifacts.example/feu" in text:
                if publisher is None:
                    port = free_port()
                    publisher = box.start([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                           "--directory", box.path("srv/feu")], "publisher.log")
                    wait_for(lambda: listening(port), "artifact server", proc=publisher)
                    box.addresses["https://artifacts.example/feu"] = "http://127.0.0.1:%d" % port
                # The pull installs into a second root: /srv/feu is the publisher's here.
                text = text.replace("--root /srv/feu", "--root %s" % box.path("mirror"))
            text = text.replace("/srv/feu", box.path("srv/feu"))
            for name, address in box.addresses.items():
                text = text.replace(name, address)
            tokens = shlex.split(text)
            program = os.path.basename(tokens[0]) if tokens else ""
            if program == "feu-daemon":
                if redis is None:
                    redis_port, fleet_front_port = free_port(), free_port()
                    os.makedirs(box.path("redis"))
                    redis = box.start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                       "--save", "", "--dir", box.path("redis")], "redis.log")
                    wait_for(lambda: listening(redis_port), "redis-server", proc=redis)
                    fleet_config(box, readme_text, redis_port, fleet_front_port)
                    box.addresses["tcp://10.0.0.1:5555"] = "tcp://127.0.0.1:%d" % free_port()  # nobody: fails over
                    box.addresses["tcp://10.0.0.2:5555"] = "tcp://127.0.0.1:%d" % fleet_front_port
                proc = box.start(tokens, "fleet-%d.log" % number)
                if "front" in tokens:
                    wait_for(lambda: listening(fleet_front_port), where, proc=proc, log=box.path("fleet-%d.log" % number))
                ran += 1
                continue
            client_needs_daemon = program == "feu" and "--local" not in tokens and "--server" not in tokens
            if client_needs_daemon and daemon_endpoint is None:
                endpoint_file = box.path("daemon.endpoint")
                proc = box.start([os.path.join(BIN, "feu-daemon"), "--config", "configs/ffhq.yaml",
                                  "--bind", "tcp://127.0.0.1:*", "--endpoint-file", endpoint_file], "daemon.log")
                wait_for(lambda: os.path.exists(endpoint_file) and os.path.getsize(endpoint_file) > 0,
                         "feu-daemon", proc=proc, log=box.path("daemon.log"))
                daemon_endpoint = open(endpoint_file).read().strip()
                box.env["FEU_SERVER"] = daemon_endpoint
                env["FEU_SERVER"] = daemon_endpoint
            print("== %s" % where, flush=True)
            if text != command:
                print("   ran: %s" % text, flush=True)
            try:
                started = time.time()
                result = box.run(text, env=env, check=False)
                print("   %.1f s" % (time.time() - started), flush=True)
                ran += 1
                if result.returncode != 0:
                    failures.append("%s\n   exit %d:\n%s" % (where, result.returncode, result.stdout[-3000:]))
                    print("   FAILED (exit %d)" % result.returncode, flush=True)
            except subprocess.TimeoutExpired:
                failures.append("%s\n   timed out" % where)
            # FFHQ stand-in: once the converter has written models/ffhq.h5, its faces form the corpus.
            if "convert_stylegan2.py" in text and os.path.exists(box.path("models/ffhq.h5")):
                make_corpus(box)
    finally:
        box.stop_all()
        if args.keep:
            print("sandbox kept:", root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    for where, reason in skipped:
        print("not run: %s (%s)" % (where, reason))
    print("%d README commands ran, %d not run, %d failed" % (ran, len(skipped), len(failures)))
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
