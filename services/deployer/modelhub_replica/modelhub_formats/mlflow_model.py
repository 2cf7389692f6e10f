"""An MLflow model as saved (`MLmodel` at the package root), run as a modelhub Model.

Built by host.py inside the model's jail, like a user's `model:Model`: the package's root is an
MLflow model directory, loaded with `mlflow.pyfunc.load_model` (which may unpickle: that is why it
happens only here). Each mini-batch becomes a pandas DataFrame, one column per schema input and
one row per sample; numbers are cast to the column types the signature declares (JSON gives `5`
for 5.0, and MLflow refuses to turn a long column into a double one). The result, a DataFrame
(columns by output name), a dict of lists, or one list/Series/ndarray, becomes
`{output: [value per sample]}` of plain Python values, and host.py checks its lengths as for any
model. A result without column names is the output the signature names, or `predictions` (as
modelhub_contracts.mlmodel.UNNAMED_OUTPUT says; this file imports nothing of the hub's).

The hub's environment provides mlflow-skinny, pandas, scikit-learn, skops and cloudpickle; with
custom env they come from the package's requirements.txt (MLflow writes them there).
"""

import os
from typing import Any

# MLflow 3 reports usage from a background thread unless told not to; a model process has no
# network to report over (its jail) and nothing to report.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

UNNAMED_OUTPUT = "predictions"
# MLflow's column types that JSON numbers and booleans are cast to, as numpy dtypes.
_CASTS = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32", "boolean": "bool"}


class Model:
    """`mlflow.pyfunc.load_model(root)` behind the interface host.py calls."""

    def __init__(self, root: str) -> None:
        try:
            import mlflow.pyfunc
            import pandas
        except ImportError as exc:
            raise ImportError(
                f"{exc}: an MLflow model needs mlflow (or mlflow-skinny) and pandas in its environment; with "
                "custom env, the package's requirements.txt must name them"
            ) from exc
        self._pd = pandas
        self._model = mlflow.pyfunc.load_model(root)
        inputs, outputs = self._model.metadata.get_input_schema(), self._model.metadata.get_output_schema()
        self._casts = _casts(inputs)
        self._order = [spec.name for spec in _named_specs(inputs)]
        self._outputs = [spec.name for spec in _named_specs(outputs)] or [UNNAMED_OUTPUT]

    def predict(self, columns: dict[str, list]) -> dict[str, list]:
        """One mini-batch: {input: [value per sample]} -> {output: [value per sample]}."""
        return self._outputs_of(self._model.predict(self.frame(columns)))

    def frame(self, columns: dict[str, list]) -> Any:
        """The mini-batch as the DataFrame the model is given: the signature's column order first,
        numbers and booleans cast to the signature's column types where every value allows it."""
        names = [n for n in self._order if n in columns] + [n for n in columns if n not in self._order]
        return self._pd.DataFrame({name: self._column(name, columns[name]) for name in names})

    def _column(self, name: str, values: list) -> Any:
        dtype = self._casts.get(name)
        if dtype is None or not all(_castable(v, dtype) for v in values):
            return values  # as given: MLflow's own schema check says what does not fit
        return self._pd.Series(values, dtype=dtype)

    def _outputs_of(self, result: Any) -> dict[str, list]:
        pd = self._pd
        if isinstance(result, pd.DataFrame):
            if len(result.columns) == 1 and len(self._outputs) == 1 and result.columns[0] not in self._outputs:
                return {self._outputs[0]: plain_list(self._outputs[0], result.iloc[:, 0])}
            return {str(c): plain_list(str(c), result[c]) for c in result.columns}
        if isinstance(result, dict):
            return {str(k): plain_list(str(k), v) for k, v in result.items()}
        if len(self._outputs) != 1:
            raise ValueError(
                f"the MLflow model returned one unnamed result ({type(result).__name__}) but its signature has "
                f"outputs {self._outputs}: it must return a DataFrame or a dict with those names"
            )
        return {self._outputs[0]: plain_list(self._outputs[0], result)}


def _named_specs(schema: Any) -> list[Any]:
    """A signature part's specs when every one has a name (else, or without one, none)."""
    specs = list(getattr(schema, "inputs", None) or [])
    return specs if specs and all(getattr(s, "name", None) for s in specs) else []


def _casts(schema: Any) -> dict[str, str]:
    casts = {}
    for spec in _named_specs(schema):
        kind = getattr(spec.type, "name", None)  # a DataType member; Array, Object, tensors have none
        if isinstance(kind, str) and kind in _CASTS:
            casts[spec.name] = _CASTS[kind]
    return casts


def _castable(value: Any, dtype: str) -> bool:
    if dtype == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return dtype.startswith("float") or float(value).is_integer()  # never truncate 2.5 to 2


def plain_list(name: str, values: Any) -> list:
    """An output's values per sample as a list of plain Python (JSON-able) values."""
    if hasattr(values, "tolist"):  # numpy arrays, pandas Series: numpy scalars become Python's
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"output '{name}' must hold a value per sample, got {type(values).__name__}")
    return [plain(v) for v in values]


def plain(value: Any) -> Any:
    """One sample's value as plain Python: numpy scalars and arrays, pandas timestamps, nested."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return value
    if callable(isoformat := getattr(value, "isoformat", None)):
        return isoformat()  # datetime, pandas Timestamp
    if callable(tolist := getattr(value, "tolist", None)):
        return plain(tolist())  # numpy scalar (-> int/float/bool/str) or array (-> nested lists)
    return value
