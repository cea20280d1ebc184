"""Typed gRPC client for a DistilBERT text classifier served by Triton: ``Classifier``, ``AsyncClassifier``.

Installs without torch: tokenization uses the checkpoint's fast tokenizer. Its public names are those imported here.
"""

from ._clients import AsyncClassifier as AsyncClassifier
from ._clients import Classifier as Classifier
from ._core import ClientOptions as ClientOptions
from ._errors import ClassifierError as ClassifierError
from ._errors import DeadlineExceededError as DeadlineExceededError
from ._errors import IncompatibleModelError as IncompatibleModelError
from ._errors import InvalidInputError as InvalidInputError
from ._errors import ModelNotReadyError as ModelNotReadyError
from ._errors import ServerError as ServerError
from ._errors import ServerUnavailableError as ServerUnavailableError
from ._model_info import ModelInfo as ModelInfo
from ._results import Classification as Classification
from ._results import LabelScore as LabelScore
from ._results import Scores as Scores
from ._retry import RetryPolicy as RetryPolicy
from ._tokenize import Truncation as Truncation
