"""Embedded synthetic face-video corpus that stands in for FaceForensics++, DFD and Celeb-DF v1/v2.

The real datasets are gated, so the workflow can generate a corpus of procedurally drawn talking
faces laid out FILE FOR FILE like the real releases (see :mod:`dfstudy.synth.layout`); the
workflow's dataset adapters read it unchanged.

Modules, in the order a video is made:

- :mod:`~dfstudy.synth.layout`: the spec, the datasets' file names, identities and splits;
- :mod:`~dfstudy.synth.seeding`: one seeded generator per name (the determinism guarantee);
- :mod:`~dfstudy.synth.people`: identities, expression tracks, backgrounds, head motion;
- :mod:`~dfstudy.synth.drawing`: a face drawn into a frame, camera blur and noise;
- :mod:`~dfstudy.synth.methods`: one manipulation method per study dataset, with its artifact;
- :mod:`~dfstudy.synth.video`: the frames of one video, the mp4 encode, the broken videos;
- :mod:`~dfstudy.synth.corpus`: :func:`synthesize_corpus`, the whole corpus;
- :mod:`~dfstudy.synth.cli`: ``python -m dfstudy.synth``.

Determinism.  Every random choice is drawn from ``numpy.random.SeedSequence`` built from the seed
and a SHA-256 of a name (identity key, video path, ...), never from Python's ``hash``; each video is
rendered independently, so the same spec and seed give byte-identical files for any thread count.
The content of a file depends only on the seed, frame settings and its own name (and those of the
target/source it is made from), not on the other entries of the spec.
"""

from dfstudy.synth.cli import main
from dfstudy.synth.corpus import synthesize_corpus
from dfstudy.synth.layout import COLUMNS, DEFAULT_SPEC, MARKER

__all__ = ["COLUMNS", "DEFAULT_SPEC", "MARKER", "synthesize_corpus", "main"]
