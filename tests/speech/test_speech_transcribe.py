"""Real espeak-ng speech through the real faster-whisper tiny.en (int8, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
from speech_clips import words_of

from polymodal.errors import InputError, ModelSpecError, NoAudioError
from polymodal.speech import SpeechSegment, Transcript, Word, load_whisper, resolve_model, transcribe
from speech_media import make_video, silence, write_wav


def test_transcript_holds_the_spoken_words(speech_clip, clip_transcript):
    t = clip_transcript
    assert isinstance(t, Transcript) and t.model == "tiny.en"
    assert t.language == "en"  # tiny.en is English-only: nothing detected, "en" reported
    assert t.duration == pytest.approx(speech_clip.duration, abs=0.01)
    heard = words_of(t.text)
    for word in ("open", "window", "kitchen", "red", "car", "parked", "beach"):
        assert word in heard, f"{word!r} missing from {t.text!r}"


def test_vad_skips_the_leading_silence(speech_clip, clip_transcript):
    first = clip_transcript.segments[0]
    onset = speech_clip.phrase_1[0]
    assert abs(first.start - onset) <= 1.0, (first.start, onset)
    assert first.words and abs(first.words[0].start - onset) <= 1.0


def test_word_timestamps_lie_inside_the_audio_and_in_order(speech_clip, clip_transcript):
    words = [w for s in clip_transcript.segments for w in s.words]
    assert len(words) >= 14
    for s in clip_transcript.segments:
        assert isinstance(s, SpeechSegment)
        assert 0.0 <= s.start <= s.end <= speech_clip.duration
        for w in s.words:
            assert isinstance(w, Word)
            assert s.start - 0.05 <= w.start <= w.end <= s.end + 0.05
            assert 0.0 <= w.probability <= 1.0
    starts = [w.start for w in words]
    assert starts == sorted(starts)


def test_word_times_match_when_each_phrase_was_said(speech_clip, clip_transcript):
    words = {w.word.strip(" .,").lower(): w for s in clip_transcript.segments for w in s.words}
    (a1, b1), (a2, b2) = speech_clip.phrase_1, speech_clip.phrase_2
    assert a1 - 0.5 <= words["kitchen"].start and words["kitchen"].end <= b1 + 0.5
    assert a2 - 0.5 <= words["beach"].start and words["beach"].end <= b2 + 0.5
    assert a2 - 0.7 <= words["red"].start <= a2 + 1.0  # "The red ...": near the start of phrase 2


def test_to_dict_is_plain_json_data(clip_transcript):
    import json

    data = json.loads(json.dumps(clip_transcript.to_dict()))
    assert data["language"] == "en" and data["text"] == clip_transcript.text
    assert data["segments"][0]["words"][0].keys() == {"start", "end", "word", "probability"}


def test_silence_alone_gives_no_segments_with_vad(tmp_path):
    rng = np.random.default_rng(0)
    path = write_wav(tmp_path / "hiss.wav", silence(4.0) + rng.normal(0, 0.002, 64000).astype(np.float32))
    t = transcribe(path)
    assert t.segments == [] and t.text == ""
    assert t.duration == pytest.approx(4.0, abs=0.01)


def test_video_sound_track_is_transcribed(tmp_path, speech_clip):
    start = round(speech_clip.phrase_2[0] * speech_clip.rate) - 1600
    samples = np.concatenate([silence(1.0), speech_clip.samples[start:]])
    video = make_video(tmp_path / "talk.mp4", samples)
    progress: list[tuple[float, float]] = []
    t = transcribe(video, word_timestamps=False, progress=lambda done, total: progress.append((done, total)))
    assert {"red", "car", "beach"} <= words_of(t.text)
    assert all(s.words == [] for s in t.segments)
    assert progress[0][0] == 0.0 and progress[-1][0] == progress[-1][1] == pytest.approx(t.duration)


def test_video_without_sound_raises_no_audio(tmp_path):
    with pytest.raises(NoAudioError, match="no audio track"):
        transcribe(make_video(tmp_path / "mute.mp4", None))


def test_model_is_loaded_once_per_process():
    assert load_whisper(None) is load_whisper("tiny.en")
    assert load_whisper(None) is load_whisper(str(resolve_model(None).path))  # the same directory by path
    assert load_whisper(None) is not load_whisper(None, compute_type="float32")


def test_english_only_model_refuses_another_language(speech_clip):
    with pytest.raises(InputError, match="'de'"):
        transcribe(speech_clip.path, language="de")


def test_model_specs_that_name_nothing(tmp_path, monkeypatch):
    import huggingface_hub.constants

    with pytest.raises(ModelSpecError, match="unknown speech model 'whisper-huge'"):
        resolve_model("whisper-huge")
    # a real faster-whisper name that is not in the local cache (an empty one here): refused, never downloaded
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    with pytest.raises(ModelSpecError, match="not download"):
        resolve_model("base")
    with pytest.raises(ModelSpecError, match="not download"):
        resolve_model("Systran/faster-whisper-small")
    with pytest.raises(ModelSpecError, match="no CTranslate2 Whisper model"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelSpecError, match="no such directory"):
        resolve_model(str(tmp_path / "missing"))


def test_a_model_directory_is_used_as_given(tmp_path, speech_clip):
    from pathlib import Path

    copy = tmp_path / "my-whisper"
    copy.mkdir()
    for f in Path(resolve_model(None).path).iterdir():  # links: the same model under a directory of its own
        (copy / f.name).symlink_to(f)
    t = transcribe(speech_clip.path, model=str(copy), word_timestamps=False)
    assert t.model == str(copy)
    assert {"kitchen", "beach"} <= words_of(t.text)


def test_a_model_name_is_found_in_the_local_hub_cache(tmp_path, monkeypatch):
    """A faster-whisper name or Hub id resolves to a model already in the Hugging Face cache layout."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--Systran--faster-whisper-tiny.en"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    bundled = resolve_model(None).path
    for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt"):
        (snapshot / name).symlink_to(f"{bundled}/{name}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    spec = resolve_model("Systran/faster-whisper-tiny.en")
    assert spec.path == str(snapshot)
    assert load_whisper("Systran/faster-whisper-tiny.en").model.is_multilingual is False
