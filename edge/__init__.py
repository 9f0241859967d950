"""On-device keyword spotting: numpy, the audio front end and one TFLite interpreter, never torch/tensorflow.

Python programs use `KeywordSpotter` (README "Use from Python"); the command line is `kws-edge` /
`python -m edge` (`run`, `eval`, `bench`), itself a layer over `KeywordSpotter`.
"""

from edge.errors import AudioError, ManifestError, UserError
from edge.postprocess import Event
from edge.spotter import KeywordSpotter

__all__ = ["KeywordSpotter", "Event", "UserError", "AudioError", "ManifestError"]
