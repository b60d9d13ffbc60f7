"""The one error tree of polymodal.

Library code raises these and never prints or exits; the CLI and the server translate them into exit codes
and JSON. Every message names the input, the reason, and where possible what would work instead.
"""

from __future__ import annotations


class PolymodalError(Exception):
    """Base of every error polymodal raises on purpose."""

    #: exit status the CLI uses for this kind of error
    exit_code = 1


class ModelSpecError(PolymodalError, ValueError):
    """A model spec names nothing that can be loaded."""

    exit_code = 3


class ModelLoadError(PolymodalError):
    """A model was found but could not be loaded (missing files, bad weights, wrong format)."""

    exit_code = 3


class MissingDependencyError(PolymodalError, ImportError):
    """An optional package needed for a feature is not installed."""

    exit_code = 3

    def __init__(self, package: str, feature: str, extra: str | None = None) -> None:
        hint = f"pip install 'polymodal[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs the package {package!r}, which is not installed; install it with: {hint}")
        self.package = package


class InputError(PolymodalError, ValueError):
    """A user-supplied input (file, text, label list, option) is not usable."""

    exit_code = 4


class ImageDecodeError(InputError):
    """An image could not be read or decoded."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"cannot read image {source}: {reason}")
        self.source = source
        self.reason = reason


class TextTooLongError(InputError, RuntimeError):
    """A text is longer than the model's context and truncation was not asked for.

    Also a RuntimeError, because OpenAI's ``clip.tokenize`` raises RuntimeError here and code written for it
    catches that.
    """

    def __init__(self, text: str, context_length: int, tokens: int) -> None:
        shown = text if len(text) <= 60 else text[:57] + "..."
        super().__init__(
            f"text {shown!r} is {tokens} tokens, longer than the model's context of {context_length}; "
            "shorten it or pass truncate=True (--truncate on the command line)"
        )
        self.text = text


class ConfigError(PolymodalError):
    """The configuration file or an environment setting is invalid."""

    exit_code = 2


class LibraryError(PolymodalError):
    """A library cannot be opened, written or queried as asked."""

    exit_code = 1


class NotALibraryError(LibraryError, InputError):
    """A directory given as a library exists but holds something else."""

    exit_code = 4


class LibraryLockedError(LibraryError):
    """Another process is writing to the library; a second writer would interleave with it."""

    exit_code = 1


class ModelMismatchError(LibraryError):
    """The library was built with another model (or dimension, or schema) than the one asked for."""

    exit_code = 2


class CheckpointError(InputError):
    """A checkpoint directory is missing, damaged, or was made with another model or other modalities."""

    exit_code = 4


class UnsupportedModalityError(InputError):
    """Data names a modality (audio, video, ...) that no loaded encoder can embed."""

    exit_code = 4


class TrainingError(PolymodalError):
    """Training could not go on (no usable rows, a loss that became NaN, ...)."""

    exit_code = 1


class TrainingInterrupted(PolymodalError):
    """Training was stopped (Ctrl-C) after writing a checkpoint it can resume from."""

    exit_code = 130

    def __init__(self, checkpoint: str, step: int) -> None:
        super().__init__(f"interrupted at step {step}; a resumable checkpoint is in {checkpoint} (pass --resume)")
        self.checkpoint = checkpoint
        self.step = step


class GenerationError(PolymodalError):
    """An image generator (local pipeline or remote provider) could not produce the images asked for."""

    exit_code = 1


class PromptTooLongError(InputError):
    """A prompt is longer than the generator reads, and cutting it was not asked for."""

    exit_code = 4


class ProviderError(GenerationError):
    """A remote image API answered with an error, or could not be reached."""

    exit_code = 1

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProviderAuthError(ProviderError):
    """The image API refused the key (HTTP 401/403), or no key was configured."""

    exit_code = 2


class RateLimitError(ProviderError):
    """The image API kept answering HTTP 429 after the waits it asked for."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, 429)
        self.retry_after = retry_after


class ContentPolicyError(ProviderError, InputError):
    """The image API refused the prompt under its content policy (HTTP 400, content_policy_violation)."""

    exit_code = 4


class OutputSpaceError(PolymodalError):
    """The output directory has no room (or cannot be written); nothing was left half-written."""

    exit_code = 1


class ServerConfigError(ConfigError):
    """``polymodal serve`` was asked to run in a way that would be unsafe (a public address with no token)."""

    exit_code = 2


class NotFoundError(InputError):
    """An item, job or generated image id that the server does not hold."""

    exit_code = 4


class AccessDeniedError(PolymodalError):
    """A request without the server's token, from a foreign Host, or for a file outside the library's roots."""

    exit_code = 1


class UploadTooLargeError(InputError):
    """An upload is over the server's limit in bytes or in pixels."""

    exit_code = 4


class MediaDecodeError(InputError):
    """An audio or video file could not be read: missing, empty, corrupt, truncated, or not media at all."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"cannot read media {source}: {reason}")
        self.source = source
        self.reason = reason


class NoAudioError(MediaDecodeError):
    """A media file that decodes but holds no audio track (a silent video), so there is nothing to transcribe."""

    def __init__(self, source: str) -> None:
        super().__init__(source, "it has no audio track")


class NoVideoError(MediaDecodeError):
    """A container (e.g. an .mp4 holding a podcast) that decodes but has no video track: it is audio."""

    def __init__(self, source: str) -> None:
        super().__init__(source, "it has no video track")


class MediaTimeoutError(MediaDecodeError):
    """Decoding (or transcribing) a media file took longer than its time limit, and was stopped."""

    def __init__(self, source: str, limit: float, stage: str = "decoding") -> None:
        super().__init__(source, f"{stage} took longer than the time limit of {limit:g} s and was stopped")
        self.limit = limit
        self.stage = stage


class OcrError(PolymodalError):
    """An OCR engine failed on a picture that decoded fine (the engine's own error, named with the input)."""

    exit_code = 1
