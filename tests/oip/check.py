"""The Open Inference Protocol v2 from the real client: tritonclient[http] against a
running ecg-serve. Server metadata, liveness and readiness, both models' metadata
and readiness, and inference (JSON tensors, and the binary tensor extension the
client uses by default) whose outputs equal ONNX Runtime's on the same tensors.
Errors come back as the protocol's {"error": ...}.

usage: check.py URL MODEL_DIR       (tests/oip.rs runs it; needs tritonclient[http],
                                     onnxruntime, numpy: tests/oip/requirements.txt)"""
import json
import sys

import numpy as np
import onnxruntime as ort
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

url, model_dir = sys.argv[1], sys.argv[2]
client = http.InferenceServerClient(url=url)
assert client.is_server_live()
assert client.is_server_ready()
meta = client.get_server_metadata()
assert meta["name"] == "ecg-serve", meta
rng = np.random.default_rng(7)

checked = []
for name in ["ecg-segment", "ecg-beat"]:
    card = json.load(open(f"{model_dir}/{name}.json"))
    assert client.is_model_ready(name)
    assert client.is_model_ready(name, model_version=card["version"])
    m = client.get_model_metadata(name)
    assert m["name"] == name and m["versions"] == [card["version"]], m
    assert [o["name"] for o in m["outputs"]] == [o["name"] for o in card["outputs"]], m
    session = ort.InferenceSession(f"{model_dir}/{card['file']}", providers=["CPUExecutionProvider"])
    assert sorted(i["name"] for i in m["inputs"]) == sorted(i.name for i in session.get_inputs()), m
    for batch, binary in [(1, False), (5, False), (3, True), (37, True)]:
        feeds, inputs = {}, []
        for i in m["inputs"]:
            shape = [batch] + i["shape"][1:]
            x = rng.standard_normal(shape).astype(np.float32)
            feeds[i["name"]] = x
            t = http.InferInput(i["name"], shape, "FP32")
            t.set_data_from_numpy(x, binary_data=binary)
            inputs.append(t)
        outputs = [http.InferRequestedOutput(o["name"], binary_data=binary) for o in m["outputs"]]
        r = client.infer(name, inputs, outputs=outputs, request_id=f"{name}-{batch}")
        assert r.get_response()["id"] == f"{name}-{batch}"
        want = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        for o in m["outputs"]:
            got = r.as_numpy(o["name"])
            assert got.shape == want[o["name"]].shape, (name, o["name"], got.shape)
            diff = float(np.abs(got - want[o["name"]]).max())
            assert diff < 1e-4, (name, o["name"], batch, diff)
            checked.append(f"{name} {o['name']} batch {batch} {'binary' if binary else 'json'}: max |diff| {diff:.2e}")
    # The client's defaults: binary inputs, no outputs named (all come back binary).
    x = {i["name"]: rng.standard_normal([2] + i["shape"][1:]).astype(np.float32) for i in m["inputs"]}
    inputs = []
    for k, v in x.items():
        t = http.InferInput(k, list(v.shape), "FP32")
        t.set_data_from_numpy(v)
        inputs.append(t)
    r = client.infer(name, inputs)
    want = session.run(None, x)
    assert np.abs(r.as_numpy("logits") - want[0]).max() < 1e-4

# Errors: an unknown model, a wrong shape.
for call, says in [
    (lambda: client.get_model_metadata("nope"), "no model `nope`"),
    (lambda: client.infer("ecg-beat", [http.InferInput("features", [1, 3], "FP32").set_data_from_numpy(np.zeros((1, 3), np.float32), binary_data=False)]), "shape [1, 3]"),
]:
    try:
        call()
        raise AssertionError("no error for " + says)
    except InferenceServerException as e:
        assert says in str(e), str(e)
print("\n".join(checked))
print("tritonclient: all checks passed")
