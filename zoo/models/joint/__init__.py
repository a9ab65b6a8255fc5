"""Joint non-autoregressive STT + TTS (Sunder et al., arXiv:2501.09104): one multimodal encoder over
text and speech streams, an STT (CTC) and a TTS (log-mel) head, iterative refinement, Griffin-Lim audio.

* `durations`: blank-interleaved text, length regulation, CTC forced-alignment durations;
* `masking`: text masking, wav2vec 2.0 span masks, time/frequency masks;
* `model`: `JointSTTTTS` (and its STT-only / TTS-only baselines via ``tasks``), `JointConfig`, presets;
* `refine`: `refine_stt()` (confidence-guided) and `refine_tts()` (progressive unmasking);
* `audio`: `MelInverter` (Griffin-Lim), `write_wav()`, `mel_cepstral_distortion()`.
"""

from zoo.models.joint.audio import MelInverter, dct_matrix, mel_cepstral_distortion, write_wav
from zoo.models.joint.durations import (
    alignment_durations,
    check_durations,
    encode_text,
    interleave_blanks,
    length_regulate,
    path_to_alignment,
)
from zoo.models.joint.masking import mask_text, random_frame_mask, span_mask, time_freq_mask
from zoo.models.joint.model import (
    JOINT_PRESETS,
    DurationPredictor,
    JointConfig,
    JointOutput,
    JointSTTTTS,
    PostNet,
    TextEncoder,
    joint_config,
    masked_l1,
)
from zoo.models.joint.refine import refine_stt, refine_tts

__all__ = [
    "JOINT_PRESETS",
    "DurationPredictor",
    "JointConfig",
    "JointOutput",
    "JointSTTTTS",
    "MelInverter",
    "PostNet",
    "TextEncoder",
    "alignment_durations",
    "check_durations",
    "dct_matrix",
    "encode_text",
    "interleave_blanks",
    "joint_config",
    "length_regulate",
    "mask_text",
    "masked_l1",
    "mel_cepstral_distortion",
    "path_to_alignment",
    "random_frame_mask",
    "refine_stt",
    "refine_tts",
    "span_mask",
    "time_freq_mask",
    "write_wav",
]
