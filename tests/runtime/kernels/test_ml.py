"""The ai.onnx.ml kernels: official node cases, and small models checked against onnxruntime."""

import numpy as np
import pytest
from kernel_harness import cases_for, check_case

OPS = {
    "ArrayFeatureExtractor", "Binarizer", "CastMap", "CategoryMapper", "DictVectorizer",
    "FeatureVectorizer", "Imputer", "LabelEncoder", "LinearClassifier", "LinearRegressor",
    "Normalizer", "OneHotEncoder", "SVMClassifier", "SVMRegressor", "Scaler",
    "TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble", "ZipMap",
}  # fmt: skip


@pytest.mark.parametrize("name", cases_for(OPS))
def test_official_node_case(name):
    check_case(name)


# --- small models checked against onnxruntime --------------------------------------------------
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper

import onyx

F, I64, STR, D = TensorProto.FLOAT, TensorProto.INT64, TensorProto.STRING, TensorProto.DOUBLE


def _model(op, inputs, outputs, opset=1, **attrs):
    """One-node ai.onnx.ml model; inputs/outputs are (name, elem_type, shape) or ValueInfoProtos."""
    vi = lambda t: t if not isinstance(t, tuple) else helper.make_tensor_value_info(*t)
    node = helper.make_node(op, [i[0] if isinstance(i, tuple) else i.name for i in inputs],
                            [o[0] if isinstance(o, tuple) else o.name for o in outputs],
                            domain="ai.onnx.ml", **attrs)  # fmt: skip
    graph = helper.make_graph([node], "g", [vi(i) for i in inputs], [vi(o) for o in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19),
                                                    helper.make_opsetid("ai.onnx.ml", opset)])  # fmt: skip
    model.ir_version = 9
    return model.SerializeToString()


def _both(model: bytes, feed: dict):
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feed)
    got = onyx.InferenceSession(model).run(None, feed)
    return got, want


def _compare(model, feed, rtol=1e-5, atol=1e-5):
    got, want = _both(model, feed)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if isinstance(w, list):
            assert (
                g == pytest.approx(w) if not w or not isinstance(w[0], dict) else len(g) == len(w)
            )
            for gd, wd in zip(g, w):
                assert gd.keys() == wd.keys()
                assert list(gd.values()) == pytest.approx(list(wd.values()), rel=rtol, abs=atol)
            continue
        assert isinstance(g, np.ndarray)
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        assert g.shape == w.shape, (g.shape, w.shape)
        if w.dtype == object:
            assert g.tolist() == w.tolist()
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


RNG = np.random.default_rng(0)
X4 = RNG.standard_normal((7, 4)).astype(np.float32)


def _tree_attrs():
    """Two trees over 4 features; tree 0 has depth 2, tree 1 is a stump."""
    return {
        "nodes_treeids": [0, 0, 0, 0, 0, 1, 1, 1],
        "nodes_nodeids": [0, 1, 2, 3, 4, 0, 1, 2],
        "nodes_featureids": [0, 1, 0, 0, 0, 2, 0, 0],
        "nodes_values": [0.1, -0.3, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0],
        "nodes_modes": [
            "BRANCH_LEQ",
            "BRANCH_LT",
            "LEAF",
            "LEAF",
            "LEAF",
            "BRANCH_GT",
            "LEAF",
            "LEAF",
        ],
        "nodes_truenodeids": [1, 3, 0, 0, 0, 1, 0, 0],
        "nodes_falsenodeids": [2, 4, 0, 0, 0, 2, 0, 0],
        "nodes_missing_value_tracks_true": [1, 0, 0, 0, 0, 0, 0, 0],
    }


@pytest.mark.parametrize("aggregate", ["SUM", "AVERAGE", "MIN", "MAX"])
@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"])
def test_tree_ensemble_regressor(aggregate, post):
    m = _model("TreeEnsembleRegressor", [("X", F, [None, 4])], [("Y", F, None)],
               n_targets=2, aggregate_function=aggregate, post_transform=post,
               target_treeids=[0, 0, 0, 0, 1, 1, 1], target_nodeids=[2, 3, 4, 4, 1, 2, 2],
               target_ids=[0, 0, 1, 0, 1, 0, 1], target_weights=[1.5, -2.0, 0.7, 0.2, 3.0, -1.0, 0.25],
               base_values=[0.5, -0.5], **_tree_attrs())  # fmt: skip
    x = X4.copy()
    x[0, 0] = np.nan
    _compare(m, {"X": x})


def test_tree_ensemble_regressor_v3_double_thresholds():
    attrs = _tree_attrs()
    values = attrs.pop("nodes_values")
    m = _model("TreeEnsembleRegressor", [("X", D, [None, 4])], [("Y", F, None)], opset=3,
               n_targets=1, nodes_values_as_tensor=helper.make_tensor("v", D, [8], values),
               target_treeids=[0, 0, 0, 1, 1], target_nodeids=[2, 3, 4, 1, 2],
               target_ids=[0, 0, 0, 0, 0], target_weights=[1.0, 2.0, 3.0, 4.0, 5.0], **attrs)  # fmt: skip
    _compare(m, {"X": X4.astype(np.float64)})


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX"])
@pytest.mark.parametrize("labels", ["ints", "strings"])
def test_tree_ensemble_classifier_multiclass(post, labels):
    lab = (
        {"classlabels_int64s": [3, 5, 9]}
        if labels == "ints"
        else {"classlabels_strings": ["a", "b", "c"]}
    )
    m = _model("TreeEnsembleClassifier", [("X", F, [None, 4])],
               [("Y", I64 if labels == "ints" else STR, None), ("Z", F, None)], post_transform=post,
               class_treeids=[0, 0, 0, 0, 1, 1, 1], class_nodeids=[2, 3, 4, 4, 1, 2, 2],
               class_ids=[0, 1, 2, 0, 1, 2, 0], class_weights=[0.5, 0.2, 0.7, 0.1, 0.3, 0.6, 0.4],
               base_values=[0.1, 0.0, -0.1], **lab, **_tree_attrs())  # fmt: skip
    _compare(m, {"X": X4})


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC"])
@pytest.mark.parametrize("case", ["both", "class0", "class1", "base1", "pos"])
def test_tree_ensemble_classifier_binary(post, case):
    ids = {"both": [0, 1, 0, 1, 0, 1, 0], "class0": [0] * 7, "class1": [1] * 7,
           "base1": [0] * 7, "pos": [1] * 7}[case]  # fmt: skip
    w = (
        [0.5, -0.2, 0.7, 0.1, -0.3, 0.6, 0.4]
        if case != "pos"
        else [0.5, 0.2, 0.7, 0.1, 0.3, 0.6, 0.4]
    )
    extra = {"base_values": [0.25]} if case == "base1" else {}
    m = _model("TreeEnsembleClassifier", [("X", F, [None, 4])], [("Y", I64, None), ("Z", F, None)],
               post_transform=post, classlabels_int64s=[0, 1],
               class_treeids=[0, 0, 0, 0, 1, 1, 1], class_nodeids=[2, 3, 4, 4, 1, 2, 2],
               class_ids=ids, class_weights=w, **extra, **_tree_attrs())  # fmt: skip
    _compare(m, {"X": X4})


def test_tree_ensemble_v5_matches_regressor():
    # tree 0: node0 x0<=0.1 ? node1 : leaf2 ; node1 x1<0 ? leaf0 : leaf1 ; tree 1: node2 x2>0.5 ? leaf3 : leaf4
    m = _model("TreeEnsemble", [("X", F, [None, 4])], [("Y", F, None)], opset=5,
               n_targets=1, aggregate_function=1, post_transform=0, tree_roots=[0, 2],
               nodes_modes=helper.make_tensor("m", TensorProto.UINT8, [3], [0, 1, 3]),
               nodes_featureids=[0, 1, 2], nodes_splits=helper.make_tensor("s", F, [3], [0.1, 0.0, 0.5]),
               nodes_truenodeids=[1, 0, 3], nodes_trueleafs=[0, 1, 1],
               nodes_falsenodeids=[2, 1, 4], nodes_falseleafs=[1, 1, 1],
               leaf_targetids=[0, 0, 0, 0, 0],
               leaf_weights=helper.make_tensor("w", F, [5], [1.0, 2.0, 3.0, 4.0, 5.0]))  # fmt: skip
    _compare(m, {"X": X4})


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"])
@pytest.mark.parametrize("labels", [[0, 1, 2], [4, 7]])
def test_linear_classifier(post, labels):
    k = len(labels)
    m = _model("LinearClassifier", [("X", F, [None, 4])], [("Y", I64, None), ("Z", F, None)],
               coefficients=RNG.standard_normal(4 * k).tolist(), intercepts=RNG.standard_normal(k).tolist(),
               classlabels_ints=labels, post_transform=post)  # fmt: skip
    _compare(m, {"X": X4})


@pytest.mark.parametrize("post", ["NONE", "LOGISTIC"])
def test_linear_classifier_one_score_binary(post):
    m = _model("LinearClassifier", [("X", F, [None, 4])], [("Y", STR, None), ("Z", F, None)],
               coefficients=[0.5, -1.0, 0.25, 2.0], intercepts=[0.1], classlabels_strings=["no", "yes"],
               post_transform=post)  # fmt: skip
    _compare(m, {"X": X4})


def test_linear_regressor():
    m = _model("LinearRegressor", [("X", F, [None, 4])], [("Y", F, None)], targets=2,
               coefficients=RNG.standard_normal(8).tolist(), intercepts=[0.5, -1.0])  # fmt: skip
    _compare(m, {"X": X4})


SV = RNG.standard_normal((5, 4)).round(3)


@pytest.mark.parametrize("kernel", ["LINEAR", "POLY", "RBF", "SIGMOID"])
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("proba", [False, True])
def test_svm_classifier(kernel, k, proba):
    per_class = [2, 3] if k == 2 else [2, 1, 2]
    pairs = k * (k - 1) // 2
    extra = (
        {"prob_a": [-1.5, -0.7, -2.0][:pairs], "prob_b": [0.1, -0.2, 0.05][:pairs]} if proba else {}
    )
    m = _model("SVMClassifier", [("X", F, [None, 4])], [("Y", I64, None), ("Z", F, None)],
               classlabels_ints=list(range(10, 10 + k)), kernel_type=kernel,
               kernel_params=[0.3, 0.5, 3.0], vectors_per_class=per_class,
               support_vectors=SV.reshape(-1).tolist(),
               coefficients=RNG.standard_normal((k - 1) * 5).round(3).tolist(),
               rho=[0.2, -0.1, 0.05][:pairs], **extra)  # fmt: skip
    _compare(m, {"X": X4}, rtol=1e-4, atol=1e-5)


def test_svm_classifier_linear_mode():
    m = _model("SVMClassifier", [("X", F, [None, 4])], [("Y", STR, None), ("Z", F, None)],
               classlabels_strings=["a", "b", "c"], coefficients=RNG.standard_normal(12).tolist(),
               rho=[0.3], kernel_params=[0.0, 0.0, 0.0])  # fmt: skip
    _compare(m, {"X": X4})


@pytest.mark.parametrize("kernel", ["LINEAR", "RBF", "POLY"])
@pytest.mark.parametrize("one_class", [0, 1])
def test_svm_regressor(kernel, one_class):
    m = _model("SVMRegressor", [("X", F, [None, 4])], [("Y", F, None)], kernel_type=kernel,
               kernel_params=[0.3, 0.5, 2.0], n_supports=5, support_vectors=SV.reshape(-1).tolist(),
               coefficients=[0.5, -0.2, 0.3, 1.0, -0.7], rho=[0.1], one_class=one_class)  # fmt: skip
    _compare(m, {"X": X4}, rtol=1e-4)


def test_svm_regressor_linear_mode():
    m = _model("SVMRegressor", [("X", F, [None, 4])], [("Y", F, None)],
               coefficients=[0.5, -0.2, 0.3, 1.0], rho=[0.1], kernel_params=[0.0, 0.0, 0.0])  # fmt: skip
    _compare(m, {"X": X4})


@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
def test_normalizer(norm):
    x = X4.copy()
    x[1] = 0
    m = _model("Normalizer", [("X", F, [None, 4])], [("Y", F, None)], norm=norm)
    _compare(m, {"X": x})


def test_scaler_int_input():
    m = _model(
        "Scaler",
        [("X", I64, [None, 3])],
        [("Y", F, None)],
        offset=[1.0, 2.0, 3.0],
        scale=[0.5, 2.0, 1.0],
    )
    _compare(m, {"X": np.arange(12, dtype=np.int64).reshape(4, 3)})


def test_binarizer_and_imputer():
    m = _model("Binarizer", [("X", F, [None, 4])], [("Y", F, None)], threshold=0.2)
    _compare(m, {"X": X4})
    m = _model("Imputer", [("X", F, [None, 4])], [("Y", F, None)], replaced_value_float=float("nan"),
               imputed_value_floats=[1.0, 2.0, 3.0, 4.0])  # fmt: skip
    x = X4.copy()
    x[::2, 1] = np.nan
    _compare(m, {"X": x})
    m = _model("Imputer", [("X", I64, [None, 2])], [("Y", I64, None)], replaced_value_int64=-1,
               imputed_value_int64s=[9])  # fmt: skip
    _compare(m, {"X": np.array([[1, -1], [-1, 3]], np.int64)})


def test_one_hot_encoder_and_category_mapper():
    m = _model(
        "OneHotEncoder", [("X", STR, [None])], [("Y", F, None)], cats_strings=["a", "b", "c"]
    )
    _compare(m, {"X": np.array(["b", "z", "a"], object)})
    m = _model("OneHotEncoder", [("X", I64, [None, 2])], [("Y", F, None)], cats_int64s=[4, 1, 9])
    _compare(m, {"X": np.array([[1, 9], [3, 4]], np.int64)})
    m = _model("CategoryMapper", [("X", STR, [None])], [("Y", I64, None)], cats_strings=["a", "b"],
               cats_int64s=[5, 6], default_int64=-7)  # fmt: skip
    _compare(m, {"X": np.array(["b", "q", "a"], object)})
    m = _model("CategoryMapper", [("X", I64, [None])], [("Y", STR, None)], cats_strings=["a", "b"],
               cats_int64s=[5, 6], default_string="??")  # fmt: skip
    _compare(m, {"X": np.array([6, 0, 5], np.int64)})


def test_label_encoder_versions():
    m = _model("LabelEncoder", [("X", STR, [None])], [("Y", I64, None)], opset=1,
               classes_strings=["x", "y"], default_int64=42)  # fmt: skip
    _compare(m, {"X": np.array(["y", "q", "x"], object)})
    m = _model("LabelEncoder", [("X", F, [None])], [("Y", STR, None)], opset=2,
               keys_floats=[0.5, 1.0, 2.0], values_strings=["h", "n", "t"])  # fmt: skip
    _compare(m, {"X": np.array([2.0, np.nan, 7.0, 0.5], np.float32)})
    m = _model("LabelEncoder", [("X", I64, [None])], [("Y", F, None)], opset=2,
               keys_int64s=[3, 1], values_floats=[0.25, 0.75], default_float=9.0)  # fmt: skip
    _compare(m, {"X": np.array([1, 2, 3], np.int64)})


def test_array_feature_extractor_and_feature_vectorizer():
    m = _model("ArrayFeatureExtractor", [("X", F, [None, 4]), ("I", I64, [None])], [("Y", F, None)])
    _compare(m, {"X": X4, "I": np.array([3, 0, 3], np.int64)})
    m = _model("FeatureVectorizer", [("A", F, [None, 2]), ("B", F, [None, 3])], [("Y", F, None)],
               inputdimensions=[3, 2])  # fmt: skip
    _compare(m, {"A": X4[:, :2].copy(), "B": np.arange(21, dtype=np.float32).reshape(7, 3)})


def test_maps_and_zipmap():
    m = _model("ZipMap", [("X", F, [None, 3])],
               [helper.make_value_info("Z", helper.make_sequence_type_proto(
                   helper.make_map_type_proto(STR, helper.make_tensor_type_proto(F, []))))],
               classlabels_strings=["a", "b", "c"])  # fmt: skip
    got = onyx.InferenceSession(m).run(None, {"X": X4[:2, :3].copy()})[0]
    want = ort.InferenceSession(m).run(None, {"X": X4[:2, :3].copy()})[0]
    assert [list(d) for d in got] == [list(d) for d in want]
    for g, w in zip(got, want):
        assert list(g.values()) == pytest.approx(list(w.values()))
    map_in = helper.make_value_info(
        "X", helper.make_map_type_proto(I64, helper.make_tensor_type_proto(F, []))
    )
    for form, extra in (("DENSE", {}), ("SPARSE", {"max_map": 6})):
        m = _model(
            "CastMap", [map_in], [("Y", F, None)], map_form=form, cast_to="TO_FLOAT", **extra
        )
        _compare(m, {"X": {4: 1.5, 1: 2.5, 2: -1.0}})
    map_in = helper.make_value_info(
        "X", helper.make_map_type_proto(STR, helper.make_tensor_type_proto(F, []))
    )
    m = _model("DictVectorizer", [map_in], [("Y", F, None)], string_vocabulary=["a", "c", "b", "z"])
    _compare(m, {"X": {"a": 4.0, "c": 8.0}})


# --- error paths ----------------------------------------------------------------------------------
from onyx.errors import KernelError
from onyx.runtime.kernels import ml


def test_errors():
    with pytest.raises(KernelError, match="out of range"):
        ml.array_feature_extractor(X4, np.array([4], np.int64))
    with pytest.raises(KernelError, match="features"):
        ml.LinearRegressor(coefficients=[1.0, 2.0])(X4)
    with pytest.raises(KernelError, match="not a category"):
        ml.OneHotEncoder(cats_int64s=[1, 2], zeros=0)(np.array([3], np.int64))
    with pytest.raises(KernelError, match="post_transform"):
        ml.LinearRegressor(coefficients=[1.0], post_transform="BAD")
    with pytest.raises(KernelError, match="cycle"):
        ml.TreeEnsembleRegressor(n_targets=1, nodes_treeids=[0, 0], nodes_nodeids=[0, 1],
                                 nodes_featureids=[0, 0], nodes_values=[0.0, 0.0],
                                 nodes_modes=["BRANCH_LEQ", "BRANCH_LEQ"], nodes_truenodeids=[1, 0],
                                 nodes_falsenodeids=[1, 0], target_treeids=[], target_nodeids=[],
                                 target_ids=[], target_weights=[])  # fmt: skip
    with pytest.raises(KernelError, match="missing node"):
        ml.TreeEnsembleRegressor(n_targets=1, nodes_treeids=[0], nodes_nodeids=[0], nodes_featureids=[0],
                                 nodes_values=[0.0], nodes_modes=["BRANCH_LEQ"], nodes_truenodeids=[5],
                                 nodes_falsenodeids=[6])  # fmt: skip
    reg = ml.TreeEnsembleRegressor(n_targets=1, nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2],
                                   nodes_featureids=[9, 0, 0], nodes_values=[0.0] * 3,
                                   nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"], nodes_truenodeids=[1, 0, 0],
                                   nodes_falsenodeids=[2, 0, 0], target_treeids=[0], target_nodeids=[1],
                                   target_ids=[0], target_weights=[1.0])  # fmt: skip
    with pytest.raises(KernelError, match="feature"):
        reg(X4)
    with pytest.raises(KernelError, match="map"):
        ml.CastMap()(np.zeros(3))
    with pytest.raises(KernelError, match="SPARSE"):
        ml.CastMap(map_form="SPARSE", max_map=2)({5: 1.0})
    with pytest.raises(KernelError, match="columns"):
        ml.ZipMap(classlabels_int64s=[1, 2])(X4)
    with pytest.raises(KernelError, match="rows"):
        ml.FeatureVectorizer(inputdimensions=[1, 1])(X4, X4[:2])


def test_tree_ensemble_v5_min_max_and_label_encoder_nan_key():
    base = {"tree_roots": [0, 1], "nodes_modes": helper.make_tensor("m", TensorProto.UINT8, [2], [0, 2]),
                "nodes_featureids": [0, 1], "nodes_splits": helper.make_tensor("s", D, [2], [0.0, 0.0]),
                "nodes_truenodeids": [0, 2], "nodes_trueleafs": [1, 1], "nodes_falsenodeids": [1, 3],
                "nodes_falseleafs": [1, 1], "leaf_targetids": [0, 1, 0, 1],
                "leaf_weights": helper.make_tensor("w", D, [4], [1.0, 2.0, 3.0, 4.0])}  # fmt: skip
    x = X4.astype(np.float64)
    for agg in (0, 2, 3):
        y = ml.TreeEnsemble(n_targets=2, aggregate_function=agg, **{
            k: (onnx.numpy_helper.to_array(v) if isinstance(v, TensorProto) else v) for k, v in base.items()
        })(x)  # fmt: skip
        t0 = np.where(x[:, 0] <= 0, 1.0, 0.0)  # tree 0: leaf 0 (target 0) or leaf 1 (target 1)
        t1 = np.where(x[:, 1] >= 0, 1.0, 0.0)  # tree 1: leaf 2 (target 0) or leaf 3 (target 1)
        hits0 = [np.where(t0 == 1, 1.0, np.nan), np.where(t1 == 1, 3.0, np.nan)]
        if agg == 0:
            want0 = (np.nan_to_num(hits0[0]) + np.nan_to_num(hits0[1])) / 2
        else:
            fn = np.fmin if agg == 2 else np.fmax
            want0 = np.nan_to_num(fn(hits0[0], hits0[1]))
        assert y.dtype == np.float64
        np.testing.assert_allclose(y[:, 0], want0)
    enc = ml.LabelEncoder(keys_tensor=np.array([1.0, np.nan], np.float32),
                          values_tensor=np.array([10, 20], np.int16),
                          default_tensor=np.array([-5], np.int16))  # fmt: skip
    out = enc(np.array([np.nan, 1.0, 3.0], np.float32))
    assert out.dtype == np.int16 and out.tolist() == [20, 10, -5]


def test_zipmap_int_labels_and_1d_input():
    z = ml.ZipMap(classlabels_int64s=[7, 8])(np.array([[0.25, 0.75]], np.float32))
    assert z == [{7: 0.25, 8: 0.75}]
    y, p = ml.LinearClassifier(coefficients=[1.0, -1.0, 2.0, 0.5], classlabels_ints=[0, 1],
                               intercepts=[0.0, 0.0])(np.array([1.0, 2.0], np.float32))  # fmt: skip
    assert y.tolist() == [1] and p.shape == (1, 2)
