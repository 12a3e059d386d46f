"""dfstudy: how well do deepfake detectors generalise to deepfakes they were not trained on?

Each stage of the Snakemake workflow is one module with one public function and a thin `main`
(run as ``python -m dfstudy.<stage>``); the ``dfstudy`` console command dispatches to the same mains.
Label convention throughout: 1 = fake, 0 = real.
"""

__version__ = "0.1.0"
