"""Model adapters: planners, summarizers and music generators backed by a model.

- ``bedrock_planner``: Planners ``bedrock`` and ``bedrock-agent`` (ports.JobPlanner): takes the job
  (its video is shown to the model) and its measured VideoFeatures, gives a Plan (beat grids still
  fitted by stages/plan).
- ``bedrock_summary``: Summarizer ``bedrock``: a job -> a short text.
- ``sagemaker``: Generator ``sagemaker`` (ports.AsyncMusicGenerator): MusicGen behind an asynchronous
  endpoint; segments are submitted, then polled.
- ``musicgen_local``: Generator ``musicgen-local`` (ports.MusicGenerator): transformers' MusicGen here.
- ``musicgen_common``: duration handling shared by both MusicGen generators.

Generators give float32 stereo at their ``sample_rate`` Hz, ``plan.clip_samples(index, rate)`` long.
Each adapter takes its boto3 client or model; boto3, torch and transformers are imported on use.
"""
