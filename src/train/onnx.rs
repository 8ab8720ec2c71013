//! Writes the trained [`AttentionNet`] as an ONNX model, node by node.
//!
//! The `ModelProto` types come from the vendored `proto/onnx.proto` (compiled by
//! `prost` + `protox` in `build.rs`). The graph mirrors `AttentionNet::forward`
//! exactly (opset 17): Conv / Relu / MaxPool, the attention's MatMul + Add
//! projections, per-head Reshape / Transpose, scaled scores, Softmax, the
//! residual, ReduceMean pooling, the feature branch and Concat and the dense
//! head. Inputs `signal` `[batch, channels, samples]` and, for a model with a
//! second input (the beat model's RR features, the segment model's rhythm),
//! `features` `[batch, n]`; outputs `logits` `[batch, classes]` and `attention`
//! `[batch, tokens]`; `batch` is dynamic. [`add_feature_logit`] edits an exported
//! graph: it adds a linear term of `features` to one logit (`ecg-train stack`).

use burn::module::Param;
use burn::nn::attention::MultiHeadAttention;
use burn::nn::conv::Conv1d;
use burn::nn::Linear;
use burn::nn::{GateController, LayerNorm};
use burn::prelude::*;
use prost::Message;

use super::cnn_lstm::{CnnLstm, CnnLstmConfig};
use super::crt_net::{CrtNet, CrtNetConfig};
use super::lift_2d::lift_1d_convolutions;
use super::model::{position_code, AttentionNet, AttentionNetConfig};
use super::resnet::{ResNet, ResNetConfig};

/// Generated from `proto/onnx.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use proto::attribute_proto::AttributeType;
use proto::tensor_proto::DataType;
use proto::tensor_shape_proto::{dimension, Dimension};
use proto::type_proto;

/// ONNX opset the graph is written for.
pub const OPSET: i64 = 17;
/// ONNX IR version matching opset 17.
pub const IR_VERSION: i64 = 8;

fn values<const D: usize>(p: &Param<Tensor<D>>) -> (Vec<i64>, Vec<f32>) {
    let t = p.val();
    let dims = t.dims().iter().map(|&d| d as i64).collect();
    // Parameters are f32 on the flex backend; a failed read would be a burn bug.
    let data = t.into_data().try_into_vec::<f32>().expect("f32 parameters");
    (dims, data)
}

/// Graph under construction: nodes and initializers.
#[derive(Default)]
struct Graph {
    nodes: Vec<proto::NodeProto>,
    initializers: Vec<proto::TensorProto>,
}

fn attr_ints(name: &str, v: &[i64]) -> proto::AttributeProto {
    proto::AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn attr_string(name: &str, v: &str) -> proto::AttributeProto {
    proto::AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn attr_float(name: &str, v: f32) -> proto::AttributeProto {
    proto::AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> proto::AttributeProto {
    proto::AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

impl Graph {
    fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        output: &str,
        attrs: Vec<proto::AttributeProto>,
    ) -> String {
        self.nodes.push(proto::NodeProto {
            op_type: Some(op.into()),
            name: Some(format!("{output}_{op}")),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            attribute: attrs,
            ..Default::default()
        });
        output.to_string()
    }

    fn float(&mut self, name: &str, dims: Vec<i64>, data: Vec<f32>) -> String {
        self.initializers.push(proto::TensorProto {
            name: Some(name.into()),
            dims,
            data_type: Some(DataType::Float as i32),
            raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
        name.to_string()
    }

    fn int64(&mut self, name: &str, data: &[i64]) -> String {
        self.initializers.push(proto::TensorProto {
            name: Some(name.into()),
            dims: vec![data.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            int64_data: data.to_vec(),
            ..Default::default()
        });
        name.to_string()
    }

    fn param<const D: usize>(&mut self, name: &str, p: &Param<Tensor<D>>) -> String {
        let (dims, data) = values(p);
        self.float(name, dims, data)
    }

    fn conv(&mut self, name: &str, x: &str, conv: &Conv1d, pad: usize) -> String {
        let w = self.param(&format!("{name}.weight"), &conv.weight);
        let mut inputs = vec![x.to_string(), w];
        if let Some(b) = &conv.bias {
            inputs.push(self.param(&format!("{name}.bias"), b));
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let attrs = vec![
            attr_ints("kernel_shape", &[conv.kernel_size as i64]),
            attr_ints("strides", &[conv.stride as i64]),
            attr_ints("pads", &[pad as i64, pad as i64]),
            attr_ints("dilations", &[conv.dilation as i64]),
            attr_int("group", conv.groups as i64),
        ];
        self.node("Conv", &refs, name, attrs)
    }

    fn linear(&mut self, name: &str, x: &str, linear: &Linear) -> String {
        let w = self.param(&format!("{name}.weight"), &linear.weight);
        let y = self.node("MatMul", &[x, &w], &format!("{name}.matmul"), vec![]);
        match &linear.bias {
            Some(b) => {
                let b = self.param(&format!("{name}.bias"), b);
                self.node("Add", &[&y, &b], name, vec![])
            }
            None => y,
        }
    }

    fn relu(&mut self, x: &str) -> String {
        self.node("Relu", &[x], &format!("{x}.relu"), vec![])
    }

    fn max_pool(&mut self, x: &str) -> String {
        self.max_pool_by(x, 2, 2)
    }

    fn max_pool_by(&mut self, x: &str, kernel: usize, stride: usize) -> String {
        self.node(
            "MaxPool",
            &[x],
            &format!("{x}.pool"),
            vec![
                attr_ints("kernel_shape", &[kernel as i64]),
                attr_ints("strides", &[stride as i64]),
            ],
        )
    }

    fn transpose(&mut self, x: &str, perm: &[i64], out: &str) -> String {
        self.node("Transpose", &[x], out, vec![attr_ints("perm", perm)])
    }
}

fn value_info(name: &str, dims: &[Option<i64>]) -> proto::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam("batch".into()),
            }),
            ..Default::default()
        })
        .collect();
    proto::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(proto::TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(proto::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The attention block: projections, per-head scores, softmax, context, residual.
/// Returns (hidden, attention weights `[B, H, T, T]`).
fn attention(g: &mut Graph, mha: &MultiHeadAttention, tokens: &str) -> (String, String) {
    let (heads, d_k, d_model) = (mha.n_heads as i64, mha.d_k as i64, mha.d_model as i64);
    let split = g.int64("shape.split_heads", &[0, -1, heads, d_k]);
    let merge = g.int64("shape.merge_heads", &[0, -1, d_model]);
    let mut project = |name: &str, linear: &Linear, perm: &[i64]| {
        let y = g.linear(&format!("attention.{name}"), tokens, linear);
        let y = g.node(
            "Reshape",
            &[&y, &split],
            &format!("attention.{name}.heads"),
            vec![],
        );
        g.transpose(&y, perm, &format!("attention.{name}.t"))
    };
    let q = project("query", &mha.query, &[0, 2, 1, 3]);
    let k = project("key", &mha.key, &[0, 2, 3, 1]);
    let v = project("value", &mha.value, &[0, 2, 1, 3]);
    let scores = g.node("MatMul", &[&q, &k], "attention.scores", vec![]);
    let scale = g.float("attention.scale", vec![], vec![(d_k as f32).sqrt()]);
    let scaled = g.node("Div", &[&scores, &scale], "attention.scaled", vec![]);
    let weights = g.node(
        "Softmax",
        &[&scaled],
        "attention.weights",
        vec![attr_int("axis", -1)],
    );
    let context = g.node("MatMul", &[&weights, &v], "attention.context", vec![]);
    let context = g.transpose(&context, &[0, 2, 1, 3], "attention.context.t");
    let context = g.node(
        "Reshape",
        &[&context, &merge],
        "attention.context.merged",
        vec![],
    );
    let context = g.linear("attention.output", &context, &mha.output);
    let hidden = g.node("Add", &[tokens, &context], "hidden", vec![]);
    (hidden, weights)
}

/// Serialises `net` (trained with `cfg`) as ONNX bytes.
pub fn export(net: &AttentionNet, cfg: &AttentionNetConfig, name: &str, version: &str) -> Vec<u8> {
    let mut g = Graph::default();
    let x = g.conv("conv1", "signal", &net.conv1, cfg.conv1_kernel / 2);
    let x = g.relu(&x);
    let x = g.max_pool(&x);
    let x = g.conv("conv2", &x, &net.conv2, cfg.conv2_kernel / 2);
    let x = g.relu(&x);
    let x = g.max_pool(&x);
    let x = g.conv("conv3", &x, &net.conv3, 0);
    let x = g.relu(&x);
    let mut tokens = g.transpose(&x, &[0, 2, 1], "tokens");
    if net.position_code {
        let (t, c) = (cfg.tokens(), cfg.conv2_filters);
        let code = g.float(
            "position_code",
            vec![1, t as i64, c as i64],
            position_code(t, c),
        );
        tokens = g.node("Add", &[&tokens, &code], "tokens.positioned", vec![]);
    }
    let (hidden, weights) = attention(&mut g, &net.attention, &tokens);
    let mut pooled = g.node(
        "ReduceMean",
        &[&hidden],
        "pooled",
        vec![attr_ints("axes", &[1]), attr_int("keepdims", 0)],
    );
    let mut inputs = vec![value_info(
        "signal",
        &[
            None,
            Some(cfg.input_channels as i64),
            Some(cfg.input_samples as i64),
        ],
    )];
    if let Some(layer) = &net.features {
        let f = g.linear("features.dense", "features", layer);
        let f = g.relu(&f);
        pooled = g.node(
            "Concat",
            &[&pooled, &f],
            "pooled.features",
            vec![attr_int("axis", 1)],
        );
        inputs.push(value_info("features", &[None, Some(cfg.features as i64)]));
    }
    let dense = g.linear("dense", &pooled, &net.dense);
    let dense = g.relu(&dense);
    let mut logits = g.linear("head", &dense, &net.head);
    if let Some(wide) = &net.wide {
        let w = g.linear("features.wide", "features", wide);
        logits = g.node("Add", &[&logits, &w], "logits.wide", vec![]);
    }
    g.node("Identity", &[&logits], LOGITS, vec![]);
    g.node(
        "ReduceMean",
        &[&weights],
        "attention",
        vec![attr_ints("axes", &[1, 2]), attr_int("keepdims", 0)],
    );
    let graph = proto::GraphProto {
        name: Some(name.into()),
        node: g.nodes,
        initializer: g.initializers,
        input: inputs,
        output: vec![
            value_info(LOGITS, &[None, Some(cfg.classes as i64)]),
            value_info("attention", &[None, Some(cfg.tokens() as i64)]),
        ],
        ..Default::default()
    };
    model_proto(
        graph,
        format!(
            "{name} {version}: CNN + {}-head self-attention ECG classifier ({} classes)",
            cfg.heads, cfg.classes
        ),
    )
    .encode_to_vec()
}

/// The bytes of a heartbeat network's graph `g`, whose value `logits` is
/// its output: input `signal` `[batch, 1, samples]`, output `logits`
/// `[batch, classes]`.
fn heartbeat_graph(
    mut g: Graph,
    logits: &str,
    name: &str,
    (samples, classes): (usize, usize),
    doc: String,
) -> Vec<u8> {
    g.node("Identity", &[logits], LOGITS, vec![]);
    let graph = proto::GraphProto {
        name: Some(name.into()),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![value_info("signal", &[None, Some(1), Some(samples as i64)])],
        output: vec![value_info(LOGITS, &[None, Some(classes as i64)])],
        ..Default::default()
    };
    model_proto(graph, doc).encode_to_vec()
}

/// Serialises the residual CNN [`ResNet`] (trained with `cfg`) as ONNX bytes:
/// input `signal` `[batch, 1, samples]`, output `logits` `[batch, classes]`.
pub fn export_resnet(net: &ResNet, cfg: &ResNetConfig, name: &str, version: &str) -> Vec<u8> {
    let mut g = Graph::default();
    let pad = cfg.kernel / 2;
    let mut x = g.conv("stem", "signal", &net.stem, pad);
    for (b, block) in net.blocks.iter().enumerate() {
        let y = g.conv(&format!("block{b}.conv1"), &x, &block.conv1, pad);
        let y = g.relu(&y);
        let y = g.conv(&format!("block{b}.conv2"), &y, &block.conv2, pad);
        let y = g.node("Add", &[&y, &x], &format!("block{b}.skip"), vec![]);
        let y = g.relu(&y);
        x = g.max_pool_by(&y, cfg.pool_kernel, cfg.pool_stride);
    }
    let flat = g.node("Flatten", &[&x], "flat", vec![attr_int("axis", 1)]);
    let h = g.linear("dense1", &flat, &net.dense1);
    let h = g.relu(&h);
    let h = g.linear("dense2", &h, &net.dense2);
    let h = g.relu(&h);
    let logits = g.linear("head", &h, &net.head);
    let doc = format!(
        "{name} {version}: residual 1-D CNN of Kachuee et al. 2018 ({} blocks, {} classes)",
        cfg.blocks, cfg.classes
    );
    heartbeat_graph(g, &logits, name, (cfg.input_samples, cfg.classes), doc)
}

/// `[rows, cols]` row-major values of a burn [`Linear`]'s weight
/// `[inputs, outputs]`, transposed to `[outputs, inputs]` (ONNX's recurrent
/// operators' layout), and its bias (zeros without one).
fn transposed(linear: &Linear) -> (Vec<f32>, Vec<f32>) {
    let (dims, w) = values(&linear.weight);
    let (inputs, outputs) = (dims[0] as usize, dims[1] as usize);
    let mut t = vec![0.0; w.len()];
    for i in 0..inputs {
        for o in 0..outputs {
            t[o * inputs + i] = w[i * outputs + o];
        }
    }
    let bias = linear
        .bias
        .as_ref()
        .map_or_else(|| vec![0.0; outputs], |b| values(b).1);
    (t, bias)
}

/// ONNX's `W`, `R` and `B` of a recurrent operator from burn's gate
/// controllers: per direction, the gates in the operator's order, each
/// weight transposed to `[outputs, inputs]`; `B` per direction is all the
/// input biases, then all the hidden ones.
fn recurrent_weights(directions: &[&[&GateController]]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut w, mut r, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for gates in directions {
        let mut hidden_bias = Vec::new();
        for gate in gates.iter() {
            let (wt, wb) = transposed(&gate.input_transform);
            w.extend(wt);
            b.extend(wb);
            let (rt, rb) = transposed(&gate.hidden_transform);
            r.extend(rt);
            hidden_bias.extend(rb);
        }
        b.extend(hidden_bias);
    }
    (w, r, b)
}

/// LayerNormalization over the last axis.
fn layer_norm(g: &mut Graph, name: &str, x: &str, norm: &LayerNorm, epsilon: f64) -> String {
    let gamma = g.param(&format!("{name}.gamma"), &norm.gamma);
    let mut inputs = vec![x.to_string(), gamma];
    if let Some(beta) = &norm.beta {
        inputs.push(g.param(&format!("{name}.beta"), beta));
    }
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    g.node(
        "LayerNormalization",
        &refs,
        name,
        vec![attr_int("axis", -1), attr_float("epsilon", epsilon as f32)],
    )
}

/// Serialises [`CrtNet`] (trained with `cfg`) as ONNX bytes: input `signal`
/// `[batch, 1, samples]`, outputs `logits` `[batch, classes]` and `attention`
/// `[batch, steps]`; the BiGRU is ONNX's `GRU` (bidirectional, gates z, r, h,
/// `linear_before_reset = 1`), the encoder's norms `LayerNormalization`.
pub fn export_crt_net(net: &CrtNet, cfg: &CrtNetConfig, name: &str, version: &str) -> Vec<u8> {
    let mut g = Graph::default();
    let pad = cfg.kernel / 2;
    let x = g.conv("conv1", "signal", &net.conv1, pad);
    let x = g.relu(&x);
    let x = g.max_pool(&x);
    let x = g.conv("conv2", &x, &net.conv2, pad);
    let x = g.relu(&x);
    let x = g.max_pool(&x);
    let steps = g.transpose(&x, &[2, 0, 1], "steps"); // [T, B, C]
    let gru = &net.gru;
    let directions: Vec<[&GateController; 3]> = [&gru.forward, &gru.reverse]
        .iter()
        .map(|d| [&d.update_gate, &d.reset_gate, &d.new_gate])
        .collect();
    let refs: Vec<&[&GateController]> = directions.iter().map(|d| &d[..]).collect();
    let (w, r, b) = recurrent_weights(&refs);
    let (h, c) = (cfg.gru_hidden as i64, cfg.conv2_filters as i64);
    let w = g.float("gru.W", vec![2, 3 * h, c], w);
    let r = g.float("gru.R", vec![2, 3 * h, h], r);
    let b = g.float("gru.B", vec![2, 6 * h], b);
    g.nodes.push(proto::NodeProto {
        op_type: Some("GRU".into()),
        name: Some("gru_GRU".into()),
        input: vec![steps, w, r, b],
        output: vec!["gru.Y".into()],
        attribute: vec![
            attr_int("hidden_size", h),
            attr_string("direction", "bidirectional"),
            attr_int("linear_before_reset", 1),
        ],
        ..Default::default()
    });
    // Y [T, 2, B, H] -> [B, T, 2, H] -> [B, T, 2H] (forward states, then reverse).
    let y = g.transpose("gru.Y", &[2, 0, 1, 3], "gru.Y.t");
    let merge = g.int64("shape.gru_states", &[0, 0, -1]);
    let states = g.node("Reshape", &[&y, &merge], "gru.states", vec![]);
    let (hidden, weights) = attention(&mut g, &net.attention, &states);
    let eps = cfg.layer_norm_epsilon;
    let x = layer_norm(&mut g, "norm1", &hidden, &net.norm1, eps);
    let f = g.linear("ff1", &x, &net.ff1);
    let f = g.relu(&f);
    let f = g.linear("ff2", &f, &net.ff2);
    let x = g.node("Add", &[&x, &f], "encoder.residual", vec![]);
    let x = layer_norm(&mut g, "norm2", &x, &net.norm2, eps);
    let pooled = g.node(
        "ReduceMean",
        &[&x],
        "pooled",
        vec![attr_ints("axes", &[1]), attr_int("keepdims", 0)],
    );
    let d = g.linear("dense", &pooled, &net.dense);
    let d = g.relu(&d);
    let logits = g.linear("head", &d, &net.head);
    g.node("Identity", &[&logits], LOGITS, vec![]);
    g.node(
        "ReduceMean",
        &[&weights],
        "attention",
        vec![attr_ints("axes", &[1, 2]), attr_int("keepdims", 0)],
    );
    let graph = proto::GraphProto {
        name: Some(name.into()),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![value_info(
            "signal",
            &[None, Some(1), Some(cfg.input_samples as i64)],
        )],
        output: vec![
            value_info(LOGITS, &[None, Some(cfg.classes as i64)]),
            value_info("attention", &[None, Some((cfg.input_samples / 4) as i64)]),
        ],
        ..Default::default()
    };
    model_proto(
        graph,
        format!(
            "{name} {version}: CRT-Net-style CNN + BiGRU + {}-head Transformer encoder ({} classes)",
            cfg.heads, cfg.classes
        ),
    )
    .encode_to_vec()
}

/// Serialises [`CnnLstm`] (trained with `cfg`) as ONNX bytes: input `signal`
/// `[batch, 1, samples]`, output `logits` `[batch, classes]`; the LSTM is
/// ONNX's `LSTM` operator (gates i, o, f, c; W, R and both biases from burn's
/// gate controllers).
pub fn export_cnn_lstm(net: &CnnLstm, cfg: &CnnLstmConfig, name: &str, version: &str) -> Vec<u8> {
    let mut g = Graph::default();
    let pad = cfg.kernel / 2;
    let x = g.conv("conv1", "signal", &net.conv1, pad);
    let x = g.relu(&x);
    let x = g.max_pool(&x);
    let x = g.conv("conv2", &x, &net.conv2, pad);
    let x = g.relu(&x);
    let x = g.max_pool(&x);
    let steps = g.transpose(&x, &[2, 0, 1], "steps"); // [T, B, C]
    let lstm = &net.lstm;
    let forget = lstm
        .forget_gate
        .as_ref()
        .expect("the network is built with a forget gate");
    let gates = [&lstm.input_gate, &lstm.output_gate, forget, &lstm.cell_gate];
    let (w, r, b) = recurrent_weights(&[&gates]);
    let (h, c) = (cfg.hidden as i64, cfg.conv2_filters as i64);
    let w = g.float("lstm.W", vec![1, 4 * h, c], w);
    let r = g.float("lstm.R", vec![1, 4 * h, h], r);
    let b = g.float("lstm.B", vec![1, 8 * h], b);
    g.nodes.push(proto::NodeProto {
        op_type: Some("LSTM".into()),
        name: Some("lstm_LSTM".into()),
        input: vec![steps, w, r, b],
        output: vec!["lstm.Y".into(), "lstm.Y_h".into()],
        attribute: vec![attr_int("hidden_size", h)],
        ..Default::default()
    });
    let axes = g.int64("lstm.axes", &[0]);
    let last = g.node("Squeeze", &["lstm.Y_h", &axes], "lstm.last", vec![]);
    let d = g.linear("dense", &last, &net.dense);
    let d = g.relu(&d);
    let logits = g.linear("head", &d, &net.head);
    let doc = format!(
        "{name} {version}: CNN + LSTM ({} hidden) beat classifier ({} classes)",
        cfg.hidden, cfg.classes
    );
    heartbeat_graph(g, &logits, name, (cfg.input_samples, cfg.classes), doc)
}

/// A model of `graph` at [`OPSET`], produced by ecg-train, its 1-D
/// convolutions written in 2-D for ONNX Runtime's faster kernels
/// ([`lift_1d_convolutions`]).
fn model_proto(mut graph: proto::GraphProto, doc: String) -> proto::ModelProto {
    lift_1d_convolutions(&mut graph);
    proto::ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("ecg-train".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        model_version: Some(1),
        doc_string: Some(doc),
        opset_import: vec![proto::OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        graph: Some(graph),
        ..Default::default()
    }
}

/// The class-logit output of every exported graph.
const LOGITS: &str = "logits";
/// The name the network's own logits get in a graph with an added feature logit.
pub const NET_LOGITS: &str = "logits.net";

/// A fixed dimension of a graph input or output, if it has one.
fn dim(info: &proto::ValueInfoProto, axis: usize) -> Option<i64> {
    let Some(type_proto::Value::TensorType(t)) = info.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    match t.shape.as_ref()?.dim.get(axis)?.value.as_ref()? {
        dimension::Value::DimValue(v) => Some(*v),
        dimension::Value::DimParam(_) => None,
    }
}

/// Adds a linear function of the `features` input to one class's logit:
/// `logits = logits.net + features · W + b`, where `W` `[features, classes]` is
/// `weights` in column `class` and zero elsewhere, and `b` is `bias` at `class`
/// and zero elsewhere. The network's nodes are untouched; the node that wrote
/// `logits` now writes [`NET_LOGITS`], and three nodes (MatMul, Add, Add) after
/// it write `logits`. `note` is appended to the model's doc string.
pub fn add_feature_logit(
    bytes: &[u8],
    class: usize,
    weights: &[f32],
    bias: f32,
    note: &str,
) -> anyhow::Result<Vec<u8>> {
    use anyhow::{bail, Context};
    let mut model = proto::ModelProto::decode(bytes).context("not an ONNX model")?;
    let graph = model
        .graph
        .as_mut()
        .context("the ONNX model has no graph")?;
    let features = graph
        .input
        .iter()
        .find(|i| i.name.as_deref() == Some("features"))
        .context("the model has no `features` input to add a term of")?;
    let width = dim(features, 1);
    if width != Some(weights.len() as i64) {
        bail!(
            "the model's `features` input is {width:?} wide, the term has {} weights",
            weights.len()
        );
    }
    let classes = graph
        .output
        .iter()
        .find(|o| o.name.as_deref() == Some(LOGITS))
        .and_then(|o| dim(o, 1))
        .context("the model has no `logits` output of fixed width")?;
    if class as i64 >= classes {
        bail!("class {class} is outside the model's {classes} logits");
    }
    let produced = |name: &str| {
        graph
            .node
            .iter()
            .position(|n| n.output.iter().any(|o| o == name))
    };
    if produced(NET_LOGITS).is_some() {
        bail!("the model already has an added feature logit (`{NET_LOGITS}`)");
    }
    let at = produced(LOGITS).context("no node writes `logits`")?;
    for out in graph.node[at].output.iter_mut().filter(|o| *o == LOGITS) {
        *out = NET_LOGITS.into();
    }
    let classes = classes as usize;
    let mut w = vec![0.0; weights.len() * classes];
    for (row, &v) in weights.iter().enumerate() {
        w[row * classes + class] = v;
    }
    let mut b = vec![0.0; classes];
    b[class] = bias;
    let mut g = Graph::default();
    let w = g.float(
        "stack.weight",
        vec![weights.len() as i64, classes as i64],
        w,
    );
    let b = g.float("stack.bias", vec![classes as i64], b);
    let term = g.node("MatMul", &["features", &w], "stack.matmul", vec![]);
    let term = g.node("Add", &[&term, &b], "stack.logit", vec![]);
    g.node("Add", &[NET_LOGITS, &term], LOGITS, vec![]);
    graph.node.splice(at + 1..at + 1, g.nodes);
    graph.initializer.extend(g.initializers);
    let doc = model.doc_string.get_or_insert_with(String::new);
    doc.push_str(note);
    Ok(model.encode_to_vec())
}

/// `v` with its subnormal values (below `f32::MIN_POSITIVE`, what L2 decay
/// leaves in a dead unit's weights) written as zero: x86 CPUs compute with
/// them many times slower (ecg-beat 2.2.0's 119 made its inference twice
/// 2.1.0's), and no logit moves by more than ~1e-36.
fn flush_subnormal(v: &[f32]) -> Vec<f32> {
    v.iter()
        .map(|&x| if x.is_subnormal() { 0.0 } else { x })
        .collect()
}

/// The beat model 2 as an ONNX graph: input `features` `[batch, width]`;
/// each member of `ensemble` standardises it as it was trained (columns `keep`
/// leaves out are multiplied by zero) and runs its dense layers with ReLU
/// between; `logits` is the members' mean.
pub fn export_mlp(
    ensemble: &super::mlp::Ensemble,
    keep: &[bool],
    name: &str,
    version: &str,
) -> anyhow::Result<Vec<u8>> {
    let mut g = Graph::default();
    let mut outputs = Vec::new();
    let Some(first) = ensemble.members.first() else {
        anyhow::bail!("an ensemble of no network");
    };
    let (width, classes) = (
        first.mean.len(),
        first.layers.last().map_or(0, |l| l.outputs),
    );
    for (k, mlp) in ensemble.members.iter().enumerate() {
        anyhow::ensure!(
            keep.len() == mlp.mean.len(),
            "the network reads {} columns, the mask has {}",
            mlp.mean.len(),
            keep.len()
        );
        let p = format!("m{k}.");
        let (mean, scale): (Vec<f32>, Vec<f32>) = mlp
            .mean
            .iter()
            .zip(&mlp.inv_std)
            .zip(keep)
            .map(|((&m, &s), &k)| if k { (m, s) } else { (0.0, 0.0) })
            .unzip();
        let n = mean.len() as i64;
        let mean = g.float(&format!("{p}mean"), vec![n], mean);
        let scale = g.float(&format!("{p}inv_std"), vec![n], scale);
        let centred = g.node("Sub", &["features", &mean], &format!("{p}centred"), vec![]);
        let mut x = g.node(
            "Mul",
            &[&centred, &scale],
            &format!("{p}standardised"),
            vec![],
        );
        for (i, layer) in mlp.layers.iter().enumerate() {
            let w = g.float(
                &format!("{p}dense{i}.weight"),
                vec![layer.inputs as i64, layer.outputs as i64],
                flush_subnormal(&layer.weights),
            );
            let b = g.float(
                &format!("{p}dense{i}.bias"),
                vec![layer.outputs as i64],
                flush_subnormal(&layer.bias),
            );
            let y = g.node("MatMul", &[&x, &w], &format!("{p}dense{i}.matmul"), vec![]);
            x = g.node("Add", &[&y, &b], &format!("{p}dense{i}"), vec![]);
            if i + 1 < mlp.layers.len() {
                x = g.relu(&x);
            }
        }
        outputs.push(x);
    }
    let refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let sum = g.node("Sum", &refs, "members.sum", vec![]);
    let k = g.float("members.inverse", vec![1], vec![1.0 / outputs.len() as f32]);
    g.node("Mul", &[&sum, &k], LOGITS, vec![]);
    let graph = proto::GraphProto {
        name: Some(format!("{name} {version}")),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![value_info("features", &[None, Some(width as i64)])],
        output: vec![value_info(LOGITS, &[None, Some(classes as i64)])],
        ..Default::default()
    };
    let doc = format!(
        "{name} {version}: standardised features through {} dense networks, logits averaged (ecg-train beat)",
        outputs.len()
    );
    Ok(model_proto(graph, doc).encode_to_vec())
}

#[cfg(test)]
mod tests {
    #[test]
    fn subnormal_weights_are_written_as_zero() {
        let v = [1e-40f32, -1e-39, 1.0, 0.0, f32::MIN_POSITIVE, -2.5];
        assert_eq!(
            super::flush_subnormal(&v),
            vec![0.0, 0.0, 1.0, 0.0, f32::MIN_POSITIVE, -2.5]
        );
    }
}
