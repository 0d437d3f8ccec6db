raise ImportError("orjson is hidden by bench/shadow: a lean install is measured")
