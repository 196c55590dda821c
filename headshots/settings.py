"""All configuration, read once from the environment (prefix ``HEADSHOTS_``) and ``.env``.

Only this module reads ``os.environ``. Entry points build one :class:`Settings` and pass it down;
nothing else keeps configuration in globals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

FaceBackendName = Literal["auto", "insightface", "dlib"]
StoreBackendName = Literal["redis", "local"]


def _default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "headshots"


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "headshots"


class Settings(BaseSettings):
    """Every setting of every process; see ``.env.example`` for the documented list."""

    model_config = SettingsConfigDict(
        env_prefix="HEADSHOTS_",
        env_file=".env",
        env_file_encoding="utf-8",
        # `HEADSHOTS_TELEGRAM_TOKEN=` in .env means "not set", not an empty string.
        env_ignore_empty=True,
        extra="ignore",
        protected_namespaces=(),
    )

    # --- where things live -------------------------------------------------------------
    state_dir: Path = Field(default_factory=_default_state_dir)
    #: What is built from the shipped data and can be built again (the content policy's
    #: vocabulary and shield, ~20 MB): each process reads it there instead of building it.
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    redis_url: str | None = None
    store_backend: StoreBackendName = "redis"
    #: Seconds to open a connection, and to wait for one command's whole answer (a blob of
    #: N MB must arrive within it). With Redis frozen, people hear "busy" after about this.
    redis_connect_timeout_s: float = Field(default=2.0, gt=0)
    redis_read_timeout_s: float = Field(default=5.0, gt=0)
    #: A refused or dropped connection is tried again this often, after a back-off that starts
    #: at ``redis_retry_backoff_s`` and doubles up to ``redis_retry_backoff_max_s``. A command
    #: that timed out is not sent again (Redis may still run it when it wakes).
    redis_retries: int = Field(default=3, ge=0)
    redis_retry_backoff_s: float = Field(default=0.25, ge=0)
    redis_retry_backoff_max_s: float = Field(default=1.0, ge=0)
    #: A pooled connection idle this long is PINGed before its next command (0: never).
    redis_health_check_interval_s: float = Field(default=30.0, ge=0)

    # --- chat platforms ---------------------------------------------------------------
    telegram_token: SecretStr | None = None
    telegram_api_url: str | None = None
    telegram_webhook_url: str | None = None
    telegram_webhook_listen: str = "127.0.0.1:8443"
    discord_token: SecretStr | None = None
    discord_api_url: str | None = None
    discord_private_threads: bool = True
    discord_thread_archive_minutes: int = 1440
    #: Slack: the bot token (``xoxb-``) for the Web API and the app-level token (``xapp-``,
    #: scope ``connections:write``) for Socket Mode; both are needed to run the Slack bot.
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    #: The Web API's base URL (ending in ``/``), e.g. a test server; unset: slack.com's.
    slack_api_url: str | None = None

    # --- retention (nothing a user sent outlives these) --------------------------------
    selfie_ttl_hours: float = 24.0
    lora_ttl_days: float = 30.0
    results_ttl_days: float = 7.0

    # --- limits ---------------------------------------------------------------------------
    max_active_jobs_per_user: int = 1
    max_jobs_per_day: int = 5
    min_selfies: int = 4
    max_selfies: int = 30
    team_max_members: int = 50
    team_jobs_per_member: int = 3
    discord_team_admin_role: str | None = None
    #: Slack team admins besides workspace admins and owners: members of this user group
    #: (its id ``S0123ABCD`` or its handle, with or without ``@``).
    slack_team_admin_group: str | None = None

    # --- queue and workers -------------------------------------------------------------
    train_job_timeout_s: int = 3600
    generate_job_timeout_s: int = 900
    job_max_tries: int = 5
    worker_max_jobs: int = 1
    status_edit_interval_s: float = 3.0
    #: Seconds between refreshes of waiting jobs' positions (one worker of the fleet does it).
    queue_refresh_s: float = 60.0
    #: Seconds between sweeps for jobs arq lost (one worker of the fleet does it).
    recovery_interval_s: float = 60.0
    stages: str = "headshots.generation.stages:build_stages"

    # --- faces --------------------------------------------------------------------------
    face_backend: FaceBackendName = "auto"
    #: Selfie checks a bot process runs at once (each holds a downloaded photo in memory).
    check_concurrency: int = Field(default=2, ge=1)
    insightface_pack: str = "buffalo_l"

    # --- models -------------------------------------------------------------------------
    model_dir: Path | None = None
    base_model: str = "SG161222/Realistic_Vision_V5.1_noVAE"
    hf_offline: bool = False
    device: str = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    lcm_lora: str | None = None
    ip_adapter_faceid: str | None = None
    #: Output check before delivery: ``auto``, a folder or HF id, or ``none`` (see safety.py).
    safety_checker: str = "auto"
    train_steps: int | None = None
    #: How the training step's UNet call is compiled (train.py ``CompiledUnetCall``): ``auto``
    #: captures CUDA graphs (``reduce-overhead``) on a CUDA device and stays eager elsewhere;
    #: ``off``, ``default``, ``reduce-overhead`` or ``max-autotune-no-cudagraphs`` force one.
    train_compile: Literal[
        "auto", "off", "default", "reduce-overhead", "max-autotune-no-cudagraphs"
    ] = "auto"
    #: How sampling's UNet forward is compiled (pipeline.py ``CompiledSampleCall``), with the
    #: values and the ``auto`` rule of ``train_compile``. FLUX.2 [klein] samples eagerly.
    sample_compile: Literal[
        "auto", "off", "default", "reduce-overhead", "max-autotune-no-cudagraphs"
    ] = "auto"
    #: Gradient checkpointing while training (less memory, slower steps): ``auto`` turns it on
    #: only when the device's free memory is short of what a step needs without it (never on
    #: the CPU); ``on`` and ``off`` force it.
    train_gradient_checkpointing: Literal["auto", "on", "off"] = "auto"
    #: Examples per training step. A batch of B runs ceil(steps / B) steps (the same number of
    #: images seen) at sqrt(B) x the learning rate (train.py ``TrainConfig.for_family``).
    train_batch_size: int = Field(default=1, ge=1, le=16)
    #: Validate likeness at checkpoints during training and keep the best-scoring LoRA; off:
    #: one validation at the end, for the record (it costs two quick samples each time).
    train_early_stopping: bool = False
    #: ControlNets for a reference photo, per family and hint: a diffusers folder or a Hugging
    #: Face id (``lllyasviel/control_v11p_sd15_openpose`` for SD1.5 pose). Unset: the chats do
    #: not offer a reference photo for that hint. diffusers has none for FLUX.2 [klein].
    controlnet_sd15_pose: str | None = None
    controlnet_sd15_canny: str | None = None
    controlnet_sdxl_pose: str | None = None
    controlnet_sdxl_canny: str | None = None
    #: How strongly the control image steers (diffusers' ``controlnet_conditioning_scale``).
    controlnet_scale: float = Field(default=0.8, ge=0.0, le=2.0)
    #: How much of the reference photo is re-drawn (img2img "prompt strength"); 1.0 keeps only
    #: the control image and draws everything else from the prompt.
    reference_strength: float = Field(default=0.8, gt=0.0, le=1.0)
    #: An ONNX top-down body-pose model (COCO heatmaps: SimpleBaseline, HRNet, ViTPose exports)
    #: for a reference photo's shoulders, arms and hips; unset, they are derived from the face
    #: (dlib's landmarks). The operator picks it, and its licence.
    pose_model: Path | None = None
    #: Override every preset's sampling steps (smoke tests, cheap dry runs); None = the preset's.
    sample_steps: int | None = None

    # --- output and provenance -----------------------------------------------------------
    #: Delivered long side in px (default: each preset's upscale_factor x native resolution,
    #: 1024 on SD1.5, 2048 on SDXL). One value for every preset, class and team.
    output_long_side: int | None = Field(default=None, ge=64, le=8192)
    #: Super-resolution weights (any architecture spandrel loads) for the enlargement before
    #: the tiled detail pass; unset: Lanczos, then the detail pass.
    super_resolution: Path | None = None
    #: C2PA signing certificate chain and private key (PEM); with both set (and c2pa-python
    #: installed) every delivered file carries a signed C2PA manifest.
    c2pa_cert: Path | None = None
    c2pa_key: Path | None = None

    log_level: str = "INFO"

    @field_validator(
        "telegram_token", "discord_token", "slack_bot_token", "slack_app_token", mode="before"
    )
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        # An empty ``HEADSHOTS_TELEGRAM_TOKEN=`` in .env means "not configured", not "".
        return None if value == "" else value

    @field_validator(
        "state_dir", "cache_dir", "model_dir", "pose_model", "super_resolution",
        "c2pa_cert", "c2pa_key",
    )  # fmt: skip
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        # .env.example writes "~/.local/state/headshots"; nothing else expands "~" (a folder
        # named "~" would appear in the working directory).
        return None if value is None else value.expanduser()

    @field_validator("discord_thread_archive_minutes")
    @classmethod
    def _discord_archive_choice(cls, value: int) -> int:
        if value not in (60, 1440, 4320, 10080):
            raise ValueError("Discord threads archive after 60, 1440, 4320 or 10080 minutes")
        return value

    @property
    def models_path(self) -> Path:
        """Directory for model weights and face model packs."""
        return self.model_dir if self.model_dir is not None else self.state_dir / "models"

    @property
    def selfie_ttl_s(self) -> int:
        return int(self.selfie_ttl_hours * 3600)

    @property
    def lora_ttl_s(self) -> int:
        return int(self.lora_ttl_days * 86400)

    @property
    def results_ttl_s(self) -> int:
        return int(self.results_ttl_days * 86400)
