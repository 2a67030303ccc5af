"""s2tf: Speech2Talking-Face (IJCAI 2021) as a tool: a face, a talking face, and gallery retrieval from a voice.

Voice-to-face is an estimate of what a speaker may look like, never an identification.
"""

__version__ = "0.1.0"

__all__ = ["S2TF", "__version__", "load"]


def __getattr__(name: str):
    # Deferred so that `import s2tf_cli` (and `s2tf --help`) does not import torch.
    if name == "S2TF":
        from .pipeline import S2TF

        return S2TF
    if name == "load":
        from .loader import load

        return load
    raise AttributeError(name)
