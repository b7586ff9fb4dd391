"""Capacity plan (issue 18, docs/SCALING.md): a discrete-event simulation of one day of jobs through
the AWS deployment's quotas, with the stage times measured on this project's machine.

    python bench/capacity.py                      # the table of docs/SCALING.md: every volume x config
    python bench/capacity.py --volume 100000 --config raised --seed 2
    python bench/capacity.py --costs              # the per-video-minute cost, line by line
    python bench/capacity.py --measure            # re-derive the inputs the code itself fixes

The day: jobs arrive as a Poisson process whose rate follows a diurnal curve (1.6x the mean at the
daily peak, 0.4x at night) with a 10x burst for 15 minutes at the peak; video lengths are log-normal
(median 1 min, clipped to 5 s .. 30 min). Each job goes as workflow.asl.json takes it:

  API Gateway (stage throttle: a POST refused is a rejected job) -> StartExecution (token bucket;
  a caller still throttled after botocore's retries gets a 503: rejected) -> Analyze -> GenerateAudio
  (Map, 4 lanes) -> Mix + Summarize, every Task needing a Lambda environment: a warm one, or a new
  one within the account's concurrency and the function's scaling rate (1,000 per 10 s), else
  Lambda.TooManyRequestsException, retried by the ASL (2 s, x2, full jitter, 3 retries) and then the
  job FAILS (Catch -> FailureHandler). Standard workflows take a token per state transition (a
  throttled transition waits); Express ones have no transition quota but die at 5 minutes. With
  MusicGen, the Analyzer queues every segment at the async endpoint (FIFO over its instances,
  autoscaled on backlog, woken from zero by the alarm) and the Map polls every 15 s.

Queueing delay = end - arrival - the job's own work (what it would take with every quota unlimited
and every environment warm): cold starts, throttle retries, token waits, endpoint queueing and poll
rounding. Every arrival ends completed, rejected, failed (with the reason) or, if still running a
day after the day ended, unfinished. Costs are summed over the work actually done (failed jobs'
included) and divided by the video-minutes completed.
Above ~60k jobs a day the simulation runs a fraction of the traffic against the same fraction of
every quota (printed as "scale"): the same averages, somewhat pessimistic tails.

Every input is in FIGURES below, with where it came from. stdlib + numpy only; seconds to run.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASL = ROOT / "musicvid_core" / "workflow" / "workflow.asl.json"

MEASURED = "measured here"
# name: (value, where it came from). Stage times are wall seconds on the 2-core machine.
FIGURES: dict[str, tuple[float, str]] = {
    # --- measured on this project's machine --------------------------------------------------
    "dev_cores": (2, "the 2-core machine every figure below was taken on"),
    "analyse_s_per_min": (2.3, "issue 18: 60 s 1280x720 H.264, analyse 2.3 s (one decode 1.8 s)"),
    "compose_core_s_per_min": (1.0, "issue 18: compose 0.5 s for 60 s, 2 segments at a time on 2 cores"),
    "mix_s_per_min": (2.0, "issue 18: mix + master 1.9 s at 60 s, 32 s at 15 min (2.1 s/min)"),
    "segments_per_min": (5.0, "bench/pipeline.py: 5 segments at 60 s, 50 at 10 min (docs/benchmarks.md)"),
    "input_mb_per_min": (83.0, "docs/benchmarks.md: the 60 s 720p x264 veryfast input is 83 MB"),
    "s3_put_base": (5, MEASURED + ": ObjectStore calls of one job, by state (6 s and 60 s inputs)"),
    "s3_put_per_seg": (1, MEASURED + ": one clip WAV per segment"),
    "s3_get_base": (12, MEASURED + ": HEAD/GET per job, + input downloads the folder store skips"),
    "s3_get_per_seg": (3, MEASURED + ": exists + plan per segment, the clip read by the mix"),
    "ddb_reads_base": (15, MEASURED + ": JobStore gets per job (+1 per segment, +1 per API poll)"),
    "ddb_writes": (9, MEASURED + ": conditional replaces + insert per job"),
    "prompt_tokens": (1022, "--measure: planner system prompt + first turn, 1 min video (chars / 3.5)"),
    "prompt_tokens_per_min": (217, "--measure: 2,975 at 10 min (cuts, curves resampled)"),
    "prompt_tokens_max": (4444, "--measure: 30 min (300 cuts, 240 curve points: the caps)"),
    "plan_out_tokens_per_seg": (62, "--measure: one reply segment, 217 chars of JSON"),
    # --- what is deployed (infra/build_template.py, chalice config, workflow.asl.json) ----------
    "mem_analyzer_mb": (4096, "infra/build_template.py MEDIA_FUNCTIONS"),
    "mem_audio_mb": (2048, "infra/build_template.py MEDIA_FUNCTIONS"),
    "mem_av_mb": (6144, "infra/build_template.py MEDIA_FUNCTIONS"),
    "mem_coordinator_mb": (512, "chalice_app/.chalice/config.json"),
    "map_concurrency": (4, "workflow.asl.json GenerateAudio MaxConcurrency"),
    "poll_s": (15, "Settings.sagemaker_poll_s"),
    "deadline_s": (1800, "Settings.sagemaker_deadline_s"),
    "sm_backlog_target": (2, "stack parameter SageMakerBacklogPerInstance"),
    "sm_max_instances": (2, "stack parameter SageMakerMaxInstances"),
    "api_rate": (50, "stack parameter ApiRateLimit (stage throttle, requests/s)"),
    "api_burst": (100, "stack parameter ApiBurstLimit"),
    "upload_days": (30, "stack parameter UploadRetentionDays"),
    "output_days": (90, "stack parameter OutputRetentionDays"),
    "web_poll": (1.0, "api/web/job.js: first poll 1 s, x1.5 to 10 s, reset on a stage change"),
    # --- assumptions (not measurable here; docs/SCALING.md says why each) -----------------------
    "mb_per_vcpu": (1769, "Lambda docs: 1,769 MB = one vCPU, in proportion"),
    "s3_mb_per_s": (90, "assumed S3 <-> Lambda throughput of one stream"),
    "fixed_s": (0.3, "assumed per invocation: job record, small objects"),
    "init_s": (3.0, "assumed cold start of the media image (numpy, scipy, SoundFont); billed"),
    "env_idle_s": (600, "assumed: an idle environment lives ~10 min"),
    "gpu_s_per_audio_s": (1.0, "assumed musicgen-small on ml.g5.xlarge, batch 1 (no GPU lent here)"),
    "gpu_overhead_s": (1.0, "assumed per request: load, decode, encode"),
    "sm_startup_s": (360, "docs/deploy.md: several minutes to start ml.g5.xlarge and load the model"),
    "nova_s": (8.0, "assumed Nova Pro latency with the video, + 2 s per video-minute"),
    "video_tokens_per_min": (17280, "Nova user guide: 1 frame/s (<= 16 min), ~288 tokens a frame"),
    "summary_s": (3.0, "assumed Claude Sonnet latency of the summary (the Coordinator waits)"),
    "summary_tokens": (150, "estimated: the summarizer's system prompt + facts wrapper, in"),
    "summary_tokens_per_seg": (66, "estimated: one segment of its facts JSON (~230 chars), in; 300 out"),
    "item_kb": (2, "assumed job item size (one write unit per KB)"),
    "egress_downloads": (1.0, "assumed: each output downloaded once, from S3"),
    # --- default quotas, us-east-1 (docs/SCALING.md cites each page) ----------------------------
    "lambda_concurrency": (1000, "Lambda: concurrent executions per Region (adjustable)"),
    "lambda_scale_per_s": (100, "Lambda: 1,000 environments per 10 s per function (not adjustable)"),
    "lambda_scale_burst": (1000, "Lambda: the same, as a bucket"),
    "start_rate": (300, "Step Functions Standard StartExecution refill/s (bucket 1,300)"),
    "start_burst": (1300, "Step Functions Standard StartExecution bucket"),
    "transition_rate": (1500, "Step Functions Standard StateTransition refill/s (bucket 5,000)"),
    "transition_burst": (5000, "Step Functions Standard StateTransition bucket"),
    "express_start_rate": (6000, "Step Functions Express StartExecution refill/s"),
    "express_max_s": (300, "Step Functions Express: 5 minutes per execution"),
    # --- prices, USD, us-east-1 ---------------------------------------------------------------
    "p_gb_s": (0.0000166667, "Lambda x86 per GB-second"),
    "p_request": (0.20e-6, "Lambda per request"),
    "p_transition": (0.025e-3, "Step Functions Standard per state transition"),
    "p_express_req": (1.00e-6, "Step Functions Express per request"),
    "p_express_gb_s": (0.00001667, "Step Functions Express per GB-second (64 MB minimum)"),
    "p_s3_put": (0.005e-3, "S3 Standard PUT/POST/LIST"),
    "p_s3_get": (0.0004e-3, "S3 Standard GET/HEAD"),
    "p_s3_gb_month": (0.023, "S3 Standard storage, first 50 TB"),
    "p_wru": (0.625e-6, "DynamoDB on-demand write request unit"),
    "p_rru": (0.125e-6, "DynamoDB on-demand read request unit"),
    "p_api": (3.50e-6, "API Gateway REST per request (first 333 M)"),
    "p_egress_gb": (0.09, "data transfer out to the internet, first 10 TB/month"),
    "p_nova_in": (0.0008e-3, "Bedrock Nova Pro per input token"),
    "p_nova_out": (0.0032e-3, "Bedrock Nova Pro per output token"),
    "p_sonnet_in": (0.003e-3, "Bedrock Claude Sonnet 4 per input token"),
    "p_sonnet_out": (0.015e-3, "Bedrock Claude Sonnet 4 per output token"),
    "p_g5_hour": (1.408, "SageMaker ml.g5.xlarge inference per instance-hour"),
}
F = {k: v for k, (v, _) in FIGURES.items()}


def asl_transitions(path: Path = ASL) -> tuple[int, int, int]:
    """State transitions of one successful execution of the definition, read from it: (outside the
    Map, per Map iteration, per poll of the Wait/Choice loop). Raises ValueError on a shape this
    reading does not know (then the model needs a look)."""
    d = json.loads(path.read_text())

    def walk(states: dict, at: str) -> tuple[list[str], list[str]]:
        seen, loop = [], []
        while at is not None:
            state = states[at]
            seen.append(at)
            if state["Type"] == "Choice":  # the straight path is the Default; the other branch loops back
                nxt = state["Choices"][0]["Next"]
                while True:
                    loop.append(nxt)
                    if nxt == at:
                        break
                    nxt = states[nxt].get("Next")
                    if nxt is None or len(loop) > len(states):
                        raise ValueError(f"the Choice branch from {at} does not loop back to it")
                at = state["Default"]
            elif state["Type"] in ("Succeed", "Fail"):
                at = None
            else:
                at = state.get("Next")
        return seen, loop

    main, _ = walk(d["States"], d["StartAt"])
    maps = [d["States"][s] for s in main if d["States"][s]["Type"] == "Map"]
    if len(maps) != 1:
        raise ValueError("expected one Map state on the main path")
    proc = maps[0]["ItemProcessor"]
    per_item, loop = walk(proc["States"], proc["StartAt"])
    return len(main), len(per_item), len(loop)


MAIN_T, ITEM_T, POLL_T = asl_transitions()


@dataclass(frozen=True)
class Config:
    name: str
    lambda_concurrency: float = F["lambda_concurrency"]
    api_rate: float = F["api_rate"]
    api_burst: float = F["api_burst"]
    express: bool = False
    musicgen: bool = False
    bedrock: bool = False
    sm_max_instances: float = F["sm_max_instances"]
    note: str = ""


CONFIGS = {
    "default": Config("default", note="the stack's defaults"),
    "api": Config("api", api_rate=2_000, api_burst=5_000, note="API stage throttle 2,000/s"),
    "raised": Config("raised", lambda_concurrency=10_000, api_rate=2_000, api_burst=5_000,
                     note="Lambda 10k, API stage 2,000/s"),
    "express": Config("express", lambda_concurrency=10_000, api_rate=2_000, api_burst=5_000, express=True,
                      note="raised + Express"),
    "musicgen": Config("musicgen", lambda_concurrency=10_000, api_rate=2_000, api_burst=5_000, musicgen=True,
                       bedrock=True, note="raised + MusicGen (max 2 instances) + Bedrock"),
    "musicgen-scaled": Config("musicgen-scaled", lambda_concurrency=10_000, api_rate=2_000, api_burst=5_000,
                              musicgen=True, bedrock=True, sm_max_instances=1_000,
                              note="musicgen with up to 1,000 instances"),
}
VOLUMES = (1_000, 100_000, 1_000_000)
HORIZON_S = 2 * 86_400  # the simulated day, and one more for the jobs still in flight at its end
MAX_JOBS = 60_000  # simulated jobs; beyond, traffic and quotas are scaled down together


def job_work(cfg: Config, minutes: float) -> tuple[int, list[float], float]:
    """(segments, [Analyze, one Map lane, Mix] seconds on Lambda, the job's own time) of a video of
    ``minutes``: the measured stage times scaled to each function's vCPUs (a stage measured on the
    2 cores uses at most 2; the AudioGenerator's render one), plus S3 transfers and fixed costs."""
    n = max(1, round(minutes * F["segments_per_min"]))
    vcpu = lambda mb: mb / F["mb_per_vcpu"]  # noqa: E731
    dev = F["dev_cores"]
    io = F["input_mb_per_min"] * minutes / F["s3_mb_per_s"]
    nova = (F["nova_s"] + 2.0 * minutes) if cfg.bedrock else 0.0
    analyse = F["analyse_s_per_min"] * minutes * dev / min(dev, vcpu(F["mem_analyzer_mb"]))
    seg = F["compose_core_s_per_min"] / F["segments_per_min"] / min(1.0, vcpu(F["mem_audio_mb"]))
    mix = F["mix_s_per_min"] * minutes * dev / min(dev, vcpu(F["mem_av_mb"]))
    wav_io = minutes * 60 * 48_000 * 8 / 1e6 / F["s3_mb_per_s"]  # the clips, float32 stereo
    lanes = min(F["map_concurrency"], n)
    work = [0.1 + F["fixed_s"] + io + analyse + nova, math.ceil(n / lanes) * (seg + F["fixed_s"]),
            2 * io + wav_io + mix + F["fixed_s"] + 0.1]
    if cfg.musicgen:  # one request's GPU time (every lane waits for its own) + reading the output
        work[1] = F["gpu_overhead_s"] + 60 / F["segments_per_min"] * F["gpu_s_per_audio_s"] + 0.6
    return n, work, sum(work) + (F["summary_s"] if cfg.bedrock else 0.0)


def planner_tokens(minutes: float) -> float:
    """Input tokens of one Bedrock plan: the prompt (measured by --measure) and the video's frames
    (1 a second up to 16 minutes, 960 beyond)."""
    text = min(F["prompt_tokens_max"], F["prompt_tokens"] + F["prompt_tokens_per_min"] * (minutes - 1))
    return text + F["video_tokens_per_min"] * min(minutes, 16.0)


def unit_table() -> None:
    """Per video-minute, for a 1 and a 10 minute video: GB-seconds per step, transitions, requests,
    bytes, tokens, GPU-seconds (the first table of docs/SCALING.md)."""
    print("| per video-minute | 1 min video | 10 min video |\n|---|---|---|")
    rows: dict[str, list[str]] = {}
    for minutes in (1.0, 10.0):
        n, work, _ = job_work(CONFIGS["default"], minutes)
        lanes = min(F["map_concurrency"], n)
        gb = {"Analyzer": F["mem_analyzer_mb"] * work[0], "AudioGenerator": F["mem_audio_mb"] * work[1] * lanes,
              "AvOperator": F["mem_av_mb"] * work[2], "Coordinator (x2)": F["mem_coordinator_mb"] * 0.2}
        for step, mb_s in gb.items():
            rows.setdefault(f"Lambda GB-s, {step}", []).append(f"{mb_s / 1024 / minutes:.2f}")
        total = sum(gb.values()) / 1024 / minutes
        rows.setdefault("Lambda GB-s, all steps", []).append(f"{total:.1f} (${total * F['p_gb_s']:.5f})")
        tr = (MAIN_T + ITEM_T * n) / minutes
        rows.setdefault("Standard transitions (procedural)", []).append(f"{tr:.1f} (${tr * F['p_transition']:.5f})")
        polls = lanes * math.ceil(120 / F["poll_s"])  # a 2-minute wait at the endpoint
        rows.setdefault("Standard transitions (MusicGen, 2 min wait)", []).append(
            f"{(MAIN_T + ITEM_T * n + POLL_T * polls) / minutes:.1f}")
        rows.setdefault("S3 PUT / GET", []).append(
            f"{(F['s3_put_base'] + n) / minutes:.1f} / {(F['s3_get_base'] + F['s3_get_per_seg'] * n) / minutes:.1f}")
        rows.setdefault("DynamoDB writes / reads (items)", []).append(
            f"{F['ddb_writes'] / minutes:.1f} / {(F['ddb_reads_base'] + n) / minutes:.1f}")
        rows.setdefault("S3 stored (MB x days) / out to users (MB)", []).append(
            f"{F['input_mb_per_min']:.0f} x {F['upload_days']:.0f} + {F['input_mb_per_min']:.0f} x {F['output_days']:.0f}"
            f" / {F['input_mb_per_min'] * F['egress_downloads']:.0f}")
        tokens = planner_tokens(minutes)
        rows.setdefault("Bedrock tokens in / out (planner)", []).append(
            f"{tokens / minutes:,.0f} / {F['plan_out_tokens_per_seg'] * n / minutes:,.0f}")
        gpu = n * (F["gpu_overhead_s"] + 60 / F["segments_per_min"] * F["gpu_s_per_audio_s"])
        rows.setdefault("SageMaker GPU-s (MusicGen)", []).append(
            f"{gpu / minutes:.0f} (${gpu / minutes / 3600 * F['p_g5_hour']:.4f} at full use)")
    for name, cells in rows.items():
        print(f"| {name} | {' | '.join(cells)} |")


class Bucket:
    """A token bucket (``rate`` tokens/s, at most ``burst``). ``wait`` reserves tokens in FIFO order and
    answers how long the caller waits for them; ``take`` takes them now or answers False."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.t = rate, burst, burst, 0.0

    def _fill(self, t: float, drain: float = 0.0) -> None:
        if t > self.t:
            self.tokens = min(self.burst, self.tokens + (t - self.t) * (self.rate - drain))
            self.t = t

    def wait(self, t: float, n: float = 1.0, drain: float = 0.0) -> float:
        """``drain``: tokens/s a steady background (the Map's polls) takes meanwhile."""
        self._fill(t, drain)
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / max(self.rate - drain, 0.05 * self.rate)

    def take(self, t: float, n: float = 1.0, drain: float = 0.0) -> bool:
        """``drain``: tokens/s others (the web app's polls) took since the last call."""
        before = self.t
        self._fill(t)
        self.tokens = max(0.0, self.tokens - drain * max(0.0, t - before))
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


def polls(seconds: float, stages: int) -> int:
    """The web app's GET /jobs/{id} calls while a job runs ``seconds`` through ``stages`` stage changes."""
    n, per = 0, seconds / max(1, stages)
    for _ in range(stages):
        delay, spent = F["web_poll"], 0.0
        while spent < per:
            spent += delay
            delay = min(10.0, delay * 1.5)
            n += 1
    return n


@dataclass
class Job:
    arrival: float
    minutes: float
    segments: int
    work: list = field(default_factory=list)  # service seconds of the three phases
    ideal: float = 0.0
    lanes_left: int = 0
    phase_end: float = 0.0
    started: float = 0.0
    map_start: float = 0.0
    retries: int = 0
    polls: int = 0


class Sim:
    def __init__(self, cfg: Config, volume: float, seed: int = 0, scale: float | None = None) -> None:
        self.cfg, self.volume, self.rng = cfg, volume, np.random.default_rng(seed)
        mean_min = float(np.exp(0.5))  # log-normal, median 1 min, sigma 1 (before clipping)
        jobs_per_day = volume / mean_min
        self.scale = scale if scale is not None else min(1.0, MAX_JOBS / jobs_per_day)
        s = self.scale
        self.lambda_c = cfg.lambda_concurrency * s
        self.api = Bucket(cfg.api_rate * s, cfg.api_burst * s)
        self.start = (Bucket(F["express_start_rate"] * s, F["express_start_rate"] * s) if cfg.express
                      else Bucket(F["start_rate"] * s, F["start_burst"] * s))
        self.transitions = Bucket(F["transition_rate"] * s, F["transition_burst"] * s)
        self.sm_max = max(1, round(cfg.sm_max_instances * s)) if cfg.musicgen else 0
        self.heap: list = []
        self.seq = 0
        self.in_use: Counter = Counter()
        self.envs: dict[str, float] = {}
        self.env_t: dict[str, float] = {}
        self.new_env = {fn: Bucket(F["lambda_scale_per_s"] * s, F["lambda_scale_burst"] * s)
                        for fn in ("analyzer", "audio", "av")}
        self.releases: list = []
        self.outcome: Counter = Counter()
        self.delays: list[float] = []
        self.done_minutes = 0.0
        self.cost: Counter = Counter()
        self.peak = Counter()
        self.per_minute = Counter()  # state transitions asked for, per minute
        self.polling = 0  # Map lanes polling the endpoint now
        self.api_per_minute = Counter()  # API requests asked for (POSTs, the web app's polls), per minute
        self.tokens_per_min = Counter()  # Bedrock input tokens, per minute
        self.active = 0
        self.sm = {"instances": 0, "pending": [], "cum_in": 0.0, "cum_out": 0.0, "queue": [], "last_out": -1e9,
                   "head": 0, "low_since": None, "ticking": False, "inst_s": 0.0, "requests": 0}
        self._arrivals(jobs_per_day * s)

    # --- the day -------------------------------------------------------------------------------
    def _arrivals(self, n_jobs: float) -> None:
        t = np.arange(86_400)
        peak = 20 * 3600  # the daily peak (UTC), where the burst lands too
        rate = 1.0 + 0.6 * np.cos(2 * np.pi * (t - peak) / 86_400)
        rate[(t >= peak - 450) & (t < peak + 450)] *= 10.0
        rate *= n_jobs / rate.sum()
        counts = self.rng.poisson(rate)
        times = np.repeat(t, counts) + self.rng.random(counts.sum())
        minutes = np.clip(self.rng.lognormal(0.0, 1.0, times.size), 5 / 60, 30.0)
        self.jobs = [self._job(float(a), float(m)) for a, m in zip(times, minutes)]
        for i, job in enumerate(self.jobs):
            self.push(job.arrival, "arrive", i)

    def _job(self, arrival: float, minutes: float) -> Job:
        n, work, ideal = job_work(self.cfg, minutes)
        return Job(arrival, minutes, n, work, ideal)

    def push(self, t: float, kind: str, jid: int, extra=None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, jid, extra))

    def run(self) -> dict:
        while self.heap:
            t, _, kind, jid, extra = heapq.heappop(self.heap)
            if t > HORIZON_S:  # what is still running a day after the day ended is counted as such
                self.outcome["unfinished: running a day later"] = len(self.jobs) - sum(self.outcome.values())
                break
            getattr(self, "on_" + kind)(t, jid, extra)
        return self.report()

    # --- quotas --------------------------------------------------------------------------------
    def _transitions(self, t: float, n: int) -> float:
        """Take ``n`` state transitions at ``t``; the wait for them (Standard's token bucket, drained
        meanwhile by the polls of every Map waiting at the endpoint)."""
        self.cost["step functions"] += 0 if self.cfg.express else n * F["p_transition"]
        self.per_minute[int(t // 60)] += n
        if self.cfg.express:
            return 0.0
        return self.transitions.wait(t, n, drain=self.polling * POLL_T / F["poll_s"])

    def _polls_done(self, t: float, job: Job) -> None:
        """The job's Map stopped polling at ``t``: its poll transitions, spread over the wait, billed."""
        self.polling -= min(F["map_concurrency"], job.segments)
        n = POLL_T * job.polls
        self.cost["step functions"] += 0 if self.cfg.express else n * F["p_transition"]
        minutes = range(int(job.map_start // 60), int(t // 60) + 1)
        for m in minutes:
            self.per_minute[m] += n / len(minutes)

    def _acquire(self, fn: str, t: float) -> tuple[bool, bool]:
        """(granted, cold) for a Task of function ``fn`` at ``t``."""
        while self.releases and self.releases[0][0] <= t:
            _, f = heapq.heappop(self.releases)
            self.in_use[f] -= 1
        total = sum(self.in_use.values())
        envs = self.envs.get(fn, 0.0)
        idle = max(0.0, envs - self.in_use[fn])  # idle environments are reclaimed after ~env_idle_s
        envs = self.in_use[fn] + idle * math.exp(-(t - self.env_t.get(fn, t)) / F["env_idle_s"])
        self.env_t[fn] = t
        if total >= self.lambda_c:
            self.envs[fn] = envs
            return False, False
        cold = self.in_use[fn] + 1 > envs
        if cold and not self.new_env[fn].take(t):
            self.envs[fn] = envs
            return False, False
        self.in_use[fn] += 1
        self.envs[fn] = max(envs, float(self.in_use[fn]))
        self.peak["lambda"] = max(self.peak["lambda"], total + 1)
        return True, cold

    def _bill(self, mb: float, seconds: float, requests: int = 1) -> None:
        self.cost["lambda"] += mb / 1024 * seconds * F["p_gb_s"] + requests * F["p_request"]

    # --- events --------------------------------------------------------------------------------
    def on_arrive(self, t: float, jid: int, _) -> None:
        job = self.jobs[jid]
        # The web app polls a running job every 10 s, and faster (from 1 s, x1.5) after each stage
        # change: a steady 0.1/s per running job, and the quick polls counted when the job starts.
        self.api_per_minute[int(t // 60)] += 2
        if not self.api.take(t, 2, drain=self.active * 0.1):  # POST /uploads, POST /jobs
            self.outcome["rejected: API 429"] += 1
            return
        self.api.tokens = max(0.0, self.api.tokens - max(0.0, polls(job.ideal, 5) - job.ideal / 10))
        wait = self.start.wait(t)
        if wait > 10.0:  # botocore's retries give up: the API answers 503
            self.start.tokens += 1
            self.outcome["rejected: StartExecution throttled"] += 1
            return
        self.active += 1
        job.started = t + wait
        self.push(job.started, "begin", jid)

    # Events that take tokens are handled at their own time: a bucket is only asked in time order.
    def on_begin(self, t: float, jid: int, _) -> None:
        self.push(t + self._transitions(t, 2), "phase", jid, 0)  # Start, Analyze

    def on_phase(self, t: float, jid: int, phase: int) -> None:
        job = self.jobs[jid]
        if job.lanes_left < 0:
            return
        if phase == 1:  # the Map state and each iteration's states
            t += self._transitions(t, 1 + ITEM_T * job.segments)
            job.map_start = t
            if self.cfg.musicgen:
                return self._submit(t, jid)
        lanes = min(F["map_concurrency"], job.segments) if phase == 1 else 1
        job.lanes_left, job.phase_end = lanes, t
        for _ in range(lanes):
            self.on_lane(t, jid, (phase, 0))

    def on_lane(self, t: float, jid: int, extra) -> None:
        phase, attempt = extra
        job = self.jobs[jid]
        if job.lanes_left < 0:  # another lane already failed the job
            return
        fn, mb = (("analyzer", F["mem_analyzer_mb"]), ("audio", F["mem_audio_mb"]), ("av", F["mem_av_mb"]))[phase]
        ok, cold = self._acquire(fn, t)
        if not ok:
            if attempt == 3:  # MaxAttempts 3 spent: Catch -> FailureHandler -> FAILED
                if job.lanes_left > 0:
                    job.lanes_left = -1
                    self.active -= 1
                    self._transitions(t, 2)
                    self._bill(F["mem_coordinator_mb"], 0.5)
                    self.outcome["failed: Lambda throttled"] += 1
                return
            job.retries += 1
            self._transitions(t, 1)
            backoff = min(30.0, 2.0 * 2.0 ** attempt)
            return self.push(t + self.rng.random() * backoff, "lane", jid, (phase, attempt + 1))
        seconds = job.work[phase] + (F["init_s"] if cold else 0.0)
        invocations = math.ceil(job.segments / min(F["map_concurrency"], job.segments)) if phase == 1 else 1
        self._bill(mb, seconds, invocations)
        if phase == 0 and self.cfg.bedrock:  # the plan: Nova Pro watching the video
            tokens_in = planner_tokens(job.minutes)
            self.cost["bedrock"] += (tokens_in * F["p_nova_in"]
                                     + F["plan_out_tokens_per_seg"] * job.segments * F["p_nova_out"])
            self.tokens_per_min[int(t // 60)] += tokens_in
        if phase != 1:  # the Coordinator's start / summary
            self._bill(F["mem_coordinator_mb"], 0.1 + (F["summary_s"] if phase == 2 and self.cfg.bedrock else 0.0))
        heapq.heappush(self.releases, (t + seconds, fn))
        job.phase_end = max(job.phase_end, t + seconds)
        job.lanes_left -= 1
        if job.lanes_left == 0:
            self.push(job.phase_end, "next", jid, phase)

    def on_next(self, t: float, jid: int, phase: int) -> None:
        """Phase ``phase`` of job ``jid`` ended at ``t``: the next one, or the end."""
        job = self.jobs[jid]
        if job.lanes_left < 0:
            return
        if phase < 2:  # the Map's transitions are taken when it starts; Mix's here
            t += self._transitions(t, 0 if phase == 0 else 1)
            return self.push(t, "phase", jid, phase + 1)
        t += self._transitions(t, MAIN_T - 4)  # Summarize, Done (Start, Analyze, Map, Mix counted)
        t += F["summary_s"] if self.cfg.bedrock else 0.0
        self.active -= 1
        job.lanes_left = -1
        if self.cfg.express and t - job.started > F["express_max_s"]:
            self.outcome["failed: Express 5-minute limit"] += 1
            return
        self.outcome["completed"] += 1
        self.delays.append(t - job.arrival - job.ideal)
        self.done_minutes += job.minutes
        self._per_job_costs(job, t - job.started)

    # --- the async endpoint ---------------------------------------------------------------------
    def _submit(self, t: float, jid: int) -> None:
        job, sm = self.jobs[jid], self.sm
        work = job.segments * (F["gpu_overhead_s"] + 60 / F["segments_per_min"] * F["gpu_s_per_audio_s"])
        sm["cum_in"] += work
        sm["requests"] += job.segments
        sm["queue"].append((sm["cum_in"], jid, t))
        self.polling += min(F["map_concurrency"], job.segments)
        self.push(t + F["deadline_s"], "deadline", jid)
        if not sm["ticking"]:
            sm["ticking"] = True
            self.push(t, "sm_tick", -1)

    def on_sm_tick(self, t: float, _jid, _x, dt: float = 5.0) -> None:
        """Every 5 s while the endpoint has work or instances: start the instances whose launch is due,
        autoscale once a minute, drain the FIFO backlog at one GPU-second per instance-second."""
        sm = self.sm
        ready = [r for r in sm["pending"] if r <= t]
        sm["instances"] += len(ready)
        sm["pending"] = [r for r in sm["pending"] if r > t]
        per_req = F["gpu_overhead_s"] + 60 / F["segments_per_min"] * F["gpu_s_per_audio_s"]
        if int(t) % 60 < dt:  # CloudWatch's one-minute metrics
            backlog = (sm["cum_in"] - sm["cum_out"]) / per_req
            have = sm["instances"] + len(sm["pending"])
            want = min(self.sm_max, math.ceil(backlog / F["sm_backlog_target"]))
            if have == 0 and backlog > 0:  # HasBacklogWithoutCapacity alarm: 2 minutes, then +1
                sm["pending"].append(t + 120 + F["sm_startup_s"])
                sm["last_out"] = t
            elif want > have and t - sm["last_out"] >= 300:  # target tracking, scale-out cooldown
                sm["pending"] += [t + 180 + F["sm_startup_s"]] * (want - have)
                sm["last_out"] = t
            if want < sm["instances"]:  # scale in after 15 low minutes and the 600 s cooldown
                sm["low_since"] = t if sm["low_since"] is None else sm["low_since"]
                if t - sm["low_since"] >= 900 and t - sm["last_out"] >= 600:
                    sm["instances"], sm["low_since"] = want, None
            else:
                sm["low_since"] = None
        self.peak["sagemaker"] = max(self.peak["sagemaker"], sm["instances"])
        sm["inst_s"] += (sm["instances"] + len(sm["pending"])) * dt  # billed from launch
        rate, out0 = sm["instances"], sm["cum_out"]
        sm["cum_out"] = min(sm["cum_in"], out0 + rate * dt)
        q = sm["queue"]
        while sm["head"] < len(q) and q[sm["head"]][0] <= sm["cum_out"] + 1e-9:
            threshold, jid, submitted = q[sm["head"]]
            sm["head"] += 1
            self._generated(t + (threshold - out0) / rate, jid, submitted)
        if sm["head"] < len(q) or sm["instances"] or sm["pending"]:
            self.push(t + dt, "sm_tick", -1)
        else:
            sm["ticking"] = False

    def on_deadline(self, t: float, jid: int, _) -> None:
        """The segments' deadline passed: still pending is a GenerationError (queued requests stay
        queued: an async invocation cannot be cancelled)."""
        job = self.jobs[jid]
        if job.lanes_left < 0 or job.polls:
            return
        job.lanes_left = -1
        self.active -= 1
        job.polls = min(F["map_concurrency"], job.segments) * math.ceil(F["deadline_s"] / F["poll_s"])
        self._bill(F["mem_audio_mb"], job.polls * F["fixed_s"], job.polls)
        self._polls_done(t, job)
        self._transitions(t, 2)
        self.outcome["failed: SageMaker deadline"] += 1

    def _generated(self, done: float, jid: int, submitted: float) -> None:
        job = self.jobs[jid]
        if job.lanes_left < 0:  # failed at its deadline already
            return
        seen = job.map_start + math.ceil(max(0.0, done - job.map_start) / F["poll_s"]) * F["poll_s"]
        job.polls = min(F["map_concurrency"], job.segments) * max(1, math.ceil((seen - job.map_start) / F["poll_s"]))
        self.push(seen, "polled", jid)

    def on_polled(self, t: float, jid: int, _) -> None:
        """A lane's poll found the job's last output: read and level every clip, then Mix."""
        job = self.jobs[jid]
        if job.lanes_left < 0:
            return
        lanes = min(F["map_concurrency"], job.segments)
        self._bill(F["mem_audio_mb"], job.polls * F["fixed_s"] + job.segments * 0.6, job.polls + job.segments)
        self._polls_done(t, job)
        end = t + math.ceil(job.segments / lanes) * 0.6
        self.push(end, "next", jid, 1)

    # --- money ---------------------------------------------------------------------------------
    def _per_job_costs(self, job: Job, exec_s: float) -> None:
        n, m = job.segments, job.minutes
        c = self.cost
        if self.cfg.express:
            c["step functions"] += F["p_express_req"] + 64 / 1024 * exec_s * F["p_express_gb_s"]
        c["s3 requests"] += ((F["s3_put_base"] + F["s3_put_per_seg"] * n) * F["p_s3_put"]
                             + (F["s3_get_base"] + F["s3_get_per_seg"] * n + 2 * job.polls) * F["p_s3_get"])
        gb_in = F["input_mb_per_min"] * m / 1024
        c["s3 storage"] += gb_in * (F["upload_days"] + F["output_days"]) / 30 * F["p_s3_gb_month"]
        c["data transfer out"] += gb_in * F["egress_downloads"] * F["p_egress_gb"]
        web = polls(exec_s, 5)
        minutes = range(int(job.started // 60), int((job.started + exec_s) // 60) + 1)
        for m in minutes:
            self.api_per_minute[m] += web / len(minutes)
        c["api gateway"] += (2 + web) * F["p_api"]
        self._bill(512, 0.05 * (2 + web), 2 + web)  # APIHandler
        reads = F["ddb_reads_base"] + n + web
        c["dynamodb"] += (2 * F["ddb_writes"] * F["item_kb"] * F["p_wru"]  # the table and its by_user index
                          + reads * math.ceil(F["item_kb"] / 4) * F["p_rru"])
        if self.cfg.bedrock:  # the summary (the plan was paid for when the Analyzer ran)
            c["bedrock"] += ((F["summary_tokens"] + F["summary_tokens_per_seg"] * n) * F["p_sonnet_in"]
                             + 300 * F["p_sonnet_out"])

    def report(self) -> dict:
        s = self.scale
        if self.cfg.musicgen:
            self.cost["sagemaker"] = self.sm["inst_s"] / 3600 * F["p_g5_hour"]
        d = np.array(self.delays) if self.delays else np.array([float("nan")])
        minutes = max(self.done_minutes, 1e-9)
        per_min = {k: v / minutes for k, v in self.cost.items()}
        arrived = len(self.jobs)
        return {"config": self.cfg.name, "volume": self.volume, "scale": s, "arrived": arrived,
                "outcomes": dict(self.outcome), "rejected": arrived - self.outcome["completed"],
                "p50_s": float(np.percentile(d, 50)), "p99_s": float(np.percentile(d, 99)),
                "peak_lambda": self.peak["lambda"] / s,
                "peak_transitions_s": max(self.per_minute.values(), default=0) / 60 / s,
                "peak_api_s": max(self.api_per_minute.values(), default=0) / 60 / s,
                "peak_instances": self.peak["sagemaker"] / s if self.cfg.musicgen else 0,
                "peak_bedrock_tpm": max(self.tokens_per_min.values(), default=0) / s,
                "usd_per_min": sum(per_min.values()), "usd_breakdown": per_min}


def simulate(config: str | Config, volume: float, seed: int = 0, scale: float | None = None) -> dict:
    """One day at ``volume`` video-minutes through ``config`` (a CONFIGS name or a Config)."""
    cfg = CONFIGS[config] if isinstance(config, str) else config
    return Sim(cfg, volume, seed, scale).run()


def row(r: dict) -> str:
    rej = 100.0 * r["rejected"] / max(1, r["arrived"])
    why = ", ".join(f"{k.split(': ')[1]} {100.0 * v / r['arrived']:.1f} %"
                    for k, v in sorted(r["outcomes"].items()) if k != "completed")
    return (f"| {r['volume']:,.0f} | {r['config']} | {r['arrived'] / r['scale']:,.0f} | {rej:.1f} %{why and ': ' + why} | "
            f"{r['p50_s']:.1f} | {r['p99_s']:.1f} | {r['peak_api_s']:,.0f} | {r['peak_lambda']:,.0f} | "
            f"{r['peak_transitions_s']:,.0f} | "
            f"{r['peak_instances']:,.0f} | {r['usd_per_min']:.4f} | {r['scale']:.2g} |")


def measure() -> None:
    """The inputs the code fixes: state transitions from the definition, the planner's prompt size."""
    sys.path.insert(0, str(ROOT))
    from musicvid_core.adapters.model import bedrock_planner as bp
    from musicvid_core.domain.features import Curve, Cut, MediaInfo, Region, VideoFeatures
    from musicvid_core.domain.styles import STYLES

    print(f"transitions: {MAIN_T} + {ITEM_T} per segment + {POLL_T} per poll (from {ASL.name})")
    system = bp.SYSTEM_PROMPT.replace("{styles}", ", ".join(sorted(STYLES)))
    for minutes in (1, 10, 30):
        dur = 60.0 * minutes
        rng = np.random.default_rng(0)
        times = list(np.arange(0, dur, 1 / 10))
        feats = VideoFeatures(
            media=MediaInfo(duration=dur, width=1280, height=720, fps=30, video_codec="h264"),
            cuts=[Cut(time=float(x), strength=float(rng.random())) for x in np.arange(4, dur, 4.0)],
            motion=Curve(times=times, values=list(rng.random(len(times)))),
            brightness=Curve(times=times, values=list(rng.random(len(times)))),
            speech=[Region(start=float(x), end=float(x) + 5) for x in np.arange(10, dur, 30.0)],
            audio_integrated_lufs=-20.0)
        chars = len(system) + len(bp._first_turn(feats, "warm acoustic, slow build, big finish"))
        print(f"planner prompt, {minutes} min: {chars:,} chars ~ {chars / 3.5:,.0f} tokens (chars / 3.5), "
              f"+ video {F['video_tokens_per_min'] * min(minutes, 16):,.0f} tokens")
    seg = {"start": 0.0, "end": 12.5, "prompt": "warm acoustic guitar and soft piano, slow build", "style": "acoustic",
           "mood": "warm", "bpm": 96, "key": "G major", "energy": 0.45, "instruments": ["guitar", "piano", "strings"]}
    print(f"reply: {len(json.dumps(seg)):,} chars a segment ~ {len(json.dumps(seg)) / 3.5:.0f} tokens")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--volume", type=float, nargs="+", default=list(VOLUMES), help="video-minutes a day")
    ap.add_argument("--config", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--costs", action="store_true", help="print each config's cost per video-minute by line")
    ap.add_argument("--measure", action="store_true", help="re-derive the code's own inputs and stop")
    args = ap.parse_args(argv)
    if args.measure:
        return measure()
    print("| video-min/day | config | jobs/day | rejected | delay p50 s | delay p99 s | API req/s, busiest minute | peak Lambda "
          "| transitions/s, busiest minute | peak GPU instances | $/video-min | scale |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for volume in args.volume:
        for name in args.config:
            results.append(simulate(name, volume, args.seed))
            print(row(results[-1]), flush=True)
    if args.costs:
        print()
        unit_table()
        print()
        for r in results:
            parts = ", ".join(f"{k} {v:.5f}" for k, v in sorted(r["usd_breakdown"].items(), key=lambda kv: -kv[1]))
            extra = f"; peak Bedrock input {r['peak_bedrock_tpm']:,.0f} tokens/min" if r["peak_bedrock_tpm"] else ""
            print(f"{r['volume']:,.0f} {r['config']}: {parts}{extra}")


if __name__ == "__main__":
    main()
