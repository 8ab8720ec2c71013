//! Writes a graph's 1-D convolutions as 2-D ones of height 1.
//!
//! ONNX Runtime's fastest CPU convolutions (MLAS's NCHWc kernels, which its
//! level-3 optimiser picks) take only 4-D tensors; a 1-D `Conv` runs through
//! im2col + GEMM instead. [`lift_1d_convolutions`] rewrites each chain of 1-D
//! `Conv` / `MaxPool` (with the `Relu` and `Add` between them) on tensors of
//! one more axis, `[batch, channels, 1, samples]`: one `Unsqueeze` where a
//! chain starts and one `Squeeze` where its value is read by anything else.
//! The arithmetic is the same; only the summation order inside a kernel may
//! differ. For the segment model (three convolutions, two pools, attention)
//! with ONNX Runtime 1.31.1 on 2 threads it ran 16 windows per call ~1.6x as
//! fast, and its outputs moved by at most 2e-6 (`README.md`, Speed).
//!
//! A writer of our own because no ONNX-editing crate does this; the graph
//! types are the vendored `onnx.proto`'s.

use std::collections::{HashMap, HashSet};

use super::onnx::proto;
use proto::attribute_proto::AttributeType;
use proto::tensor_proto::DataType;

/// The initializer holding the lifted axis, `[2]`.
const AXES: &str = "lift_2d.axes";

/// The ONNX model `bytes` with its 1-D convolutions lifted
/// ([`lift_1d_convolutions`]).
pub fn lift_model(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use prost::Message;
    let mut model = proto::ModelProto::decode(bytes).context("not an ONNX model")?;
    lift_1d_convolutions(
        model
            .graph
            .as_mut()
            .context("the ONNX model has no graph")?,
    );
    Ok(model.encode_to_vec())
}

/// Whether `node` is a `Conv` or `MaxPool` over one spatial axis.
fn one_spatial_axis(node: &proto::NodeProto) -> bool {
    matches!(node.op_type.as_deref(), Some("Conv" | "MaxPool"))
        && node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some("kernel_shape"))
            .is_some_and(|a| a.ints.len() == 1)
}

/// A 1-D spatial attribute for a height-1 2-D node: `[k]` → `[1, k]` and pads
/// `[a, b]` → `[0, a, 0, b]`.
fn lift_attribute(a: &mut proto::AttributeProto) {
    if a.r#type != Some(AttributeType::Ints as i32) {
        return;
    }
    match a.name.as_deref() {
        Some("kernel_shape" | "strides" | "dilations") => a.ints.insert(0, 1),
        Some("pads") if a.ints.len() == 2 => a.ints = vec![0, a.ints[0], 0, a.ints[1]],
        _ => {}
    }
}

/// Rewrites `graph`'s 1-D `Conv` / `MaxPool` chains in 2-D (see the module
/// doc). Values outside a chain keep their names, shapes and meaning; a
/// graph without 1-D convolutions is left as it is.
pub fn lift_1d_convolutions(graph: &mut proto::GraphProto) {
    if !graph.node.iter().any(one_spatial_axis) {
        return;
    }
    let weight_users = graph.node.iter().flat_map(|n| n.input.iter().skip(1)).fold(
        HashMap::<String, usize>::new(),
        |mut m, i| {
            *m.entry(i.clone()).or_default() += 1;
            m
        },
    );
    // 3-D name → its 4-D twin, for every value a chain holds in 4-D.
    let mut lifted: HashMap<String, String> = HashMap::new();
    // Values written by a chain node: their 3-D names exist only if squeezed.
    let mut written: Vec<String> = Vec::new();
    let mut nodes = Vec::with_capacity(graph.node.len() + 2);
    let mut new_weights = Vec::new();
    for mut node in std::mem::take(&mut graph.node) {
        // A Conv's weight is lifted with it: only a stored one (an initializer).
        let weight = match node.op_type.as_deref() {
            Some("Conv") if one_spatial_axis(&node) => {
                lift_weight(graph, &node.input[1], &weight_users, &mut new_weights)
            }
            _ => None,
        };
        let spatial = one_spatial_axis(&node)
            && (node.op_type.as_deref() != Some("Conv") || weight.is_some());
        let elementwise = matches!(node.op_type.as_deref(), Some("Relu" | "Add"))
            && !node.input.is_empty()
            && node.input.iter().all(|i| lifted.contains_key(i));
        if !(spatial || elementwise) {
            nodes.push(node);
            continue;
        }
        let x = node.input[0].clone();
        let x4 = match lifted.get(&x) {
            Some(x4) => x4.clone(),
            None => {
                let x4 = format!("{x}.2d");
                nodes.push(op("Unsqueeze", &[&x, AXES], &x4));
                lifted.insert(x.clone(), x4.clone());
                x4
            }
        };
        if spatial {
            node.input[0] = x4;
            node.attribute.iter_mut().for_each(lift_attribute);
            if let Some(w) = weight {
                node.input[1] = w;
            }
        } else {
            for i in &mut node.input {
                *i = lifted[i.as_str()].clone();
            }
        }
        let out = node.output[0].clone();
        let out4 = format!("{out}.2d");
        node.output[0] = out4.clone();
        lifted.insert(out.clone(), out4);
        written.push(out);
        nodes.push(node);
    }
    graph.initializer.extend(new_weights);
    // A chain's value read by a node outside it, or a graph output, is squeezed
    // back to 3-D under its own name right after the node that writes it.
    let read: HashSet<&str> = nodes
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .chain(graph.output.iter().filter_map(|o| o.name.as_deref()))
        .collect();
    let squeeze: HashMap<String, String> = written
        .iter()
        .filter(|o| read.contains(o.as_str()))
        .map(|o| (lifted[o.as_str()].clone(), o.clone()))
        .collect();
    graph.node = Vec::with_capacity(nodes.len() + squeeze.len());
    for node in nodes {
        let back = node.output.first().and_then(|o| squeeze.get(o));
        let back = back.map(|out| op("Squeeze", &[&node.output[0], AXES], out));
        graph.node.push(node);
        graph.node.extend(back);
    }
    graph.initializer.push(proto::TensorProto {
        name: Some(AXES.into()),
        dims: vec![1],
        data_type: Some(DataType::Int64 as i32),
        int64_data: vec![2],
        ..Default::default()
    });
}

/// The name of the stored weight `name` `[out, in, k]` as `[out, in, 1, k]`:
/// the same values, so only the dimensions change (in place, or in one copy
/// that every lifted reader shares when another node reads it too). `None`
/// for a weight the graph computes.
fn lift_weight(
    graph: &mut proto::GraphProto,
    name: &str,
    users: &HashMap<String, usize>,
    new: &mut Vec<proto::TensorProto>,
) -> Option<String> {
    let w = graph
        .initializer
        .iter_mut()
        .find(|t| t.name.as_deref() == Some(name) && t.dims.len() == 3)?;
    if users.get(name).copied().unwrap_or(0) > 1 {
        let lifted = format!("{name}.2d");
        if new
            .iter()
            .any(|t| t.name.as_deref() == Some(lifted.as_str()))
        {
            return Some(lifted);
        }
        let mut copy = w.clone();
        copy.name = Some(lifted.clone());
        copy.dims.insert(2, 1);
        new.push(copy);
        Some(lifted)
    } else {
        w.dims.insert(2, 1);
        Some(name.to_string())
    }
}

/// A node of no attributes named after its output.
fn op(op_type: &str, inputs: &[&str], output: &str) -> proto::NodeProto {
    proto::NodeProto {
        op_type: Some(op_type.into()),
        name: Some(format!("{output}_{op_type}")),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Provider, Runtime};
    use prost::Message;

    fn ints(name: &str, v: &[i64]) -> proto::AttributeProto {
        proto::AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Ints as i32),
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    fn with(mut node: proto::NodeProto, attrs: Vec<proto::AttributeProto>) -> proto::NodeProto {
        node.attribute = attrs;
        node
    }

    fn floats(name: &str, dims: &[i64]) -> proto::TensorProto {
        let n: i64 = dims.iter().product();
        proto::TensorProto {
            name: Some(name.into()),
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            float_data: (0..n)
                .map(|i| ((i * 7919 % 23) as f32 - 11.0) / 17.0)
                .collect(),
            ..Default::default()
        }
    }

    fn io(name: &str, dims: &[i64]) -> proto::ValueInfoProto {
        use proto::tensor_shape_proto::{dimension, Dimension};
        let dim = dims
            .iter()
            .map(|&d| Dimension {
                value: Some(match d {
                    0 => dimension::Value::DimParam("batch".into()),
                    d => dimension::Value::DimValue(d),
                }),
                ..Default::default()
            })
            .collect();
        proto::ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(proto::TypeProto {
                value: Some(proto::type_proto::Value::TensorType(
                    proto::type_proto::Tensor {
                        elem_type: Some(DataType::Float as i32),
                        shape: Some(proto::TensorShapeProto { dim }),
                    },
                )),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// signal [B, 1, 40] → conv (k 5, s 2, pad 2) → relu → a residual conv
    /// sharing nothing → add → max-pool → ReduceMean over time = logits [B, 4];
    /// conv `b` reuses `a`'s weight shape but not its tensor, and conv `c`
    /// reads the same weight as `b` (so that one is copied, not edited).
    fn graph() -> proto::GraphProto {
        let conv = |name: &str, x: &str, w: &str, b: &str, k: i64, s: i64, p: i64| {
            with(
                op("Conv", &[x, w, b], name),
                vec![
                    ints("kernel_shape", &[k]),
                    ints("strides", &[s]),
                    ints("pads", &[p, p]),
                    ints("dilations", &[1]),
                ],
            )
        };
        let mean = with(
            op("ReduceMean", &["pool"], "logits"),
            vec![ints("axes", &[2]), {
                let mut a = ints("keepdims", &[]);
                a.r#type = Some(AttributeType::Int as i32);
                a.i = Some(0);
                a
            }],
        );
        proto::GraphProto {
            name: Some("lift".into()),
            node: vec![
                conv("a", "signal", "wa", "ba", 5, 2, 2),
                op("Relu", &["a"], "ra"),
                conv("b", "ra", "wb", "bb", 3, 1, 1),
                conv("c", "ra", "wb", "bb", 3, 1, 1),
                op("Add", &["b", "c"], "sum"),
                op("Add", &["sum", "ra"], "skip"),
                with(
                    op("MaxPool", &["skip"], "pool"),
                    vec![ints("kernel_shape", &[2]), ints("strides", &[2])],
                ),
                mean,
            ],
            initializer: vec![
                floats("wa", &[4, 1, 5]),
                floats("ba", &[4]),
                floats("wb", &[4, 4, 3]),
                floats("bb", &[4]),
            ],
            input: vec![io("signal", &[0, 1, 40])],
            output: vec![io("logits", &[0, 4]), io("ra", &[0, 4, 20])],
            ..Default::default()
        }
    }

    fn count(g: &proto::GraphProto, op_type: &str) -> usize {
        g.node
            .iter()
            .filter(|n| n.op_type.as_deref() == Some(op_type))
            .count()
    }

    #[test]
    fn a_chain_is_lifted_once_and_squeezed_where_read() {
        let mut g = graph();
        lift_1d_convolutions(&mut g);
        // One Unsqueeze (the signal); Squeezes for the graph output `ra` and
        // for `pool`, which ReduceMean (outside the chain) reads.
        assert_eq!(count(&g, "Unsqueeze"), 1);
        assert_eq!(count(&g, "Squeeze"), 2);
        let dims = |name: &str| {
            g.initializer
                .iter()
                .find(|t| t.name.as_deref() == Some(name))
                .map(|t| t.dims.clone())
        };
        assert_eq!(dims("wa"), Some(vec![4, 1, 1, 5]));
        // `wb` has two readers (and a bias input counts as one): they share one
        // lifted copy, and the 3-D original stays for anything else.
        assert_eq!(dims("wb"), Some(vec![4, 4, 3]));
        assert_eq!(dims("wb.2d"), Some(vec![4, 4, 1, 3]));
        let copies = g
            .initializer
            .iter()
            .filter(|t| t.name.as_deref() == Some("wb.2d"));
        assert_eq!(copies.count(), 1);
        let a = g.node.iter().find(|n| n.output[0] == "a.2d").unwrap();
        let pads = a
            .attribute
            .iter()
            .find(|x| x.name.as_deref() == Some("pads"));
        assert_eq!(pads.unwrap().ints, vec![0, 2, 0, 2]);
        // Lifting again changes nothing: no 1-D convolution is left.
        let once = g.encode_to_vec();
        lift_1d_convolutions(&mut g);
        assert_eq!(g.encode_to_vec(), once);
    }

    #[test]
    fn the_lifted_graph_computes_what_the_original_does() {
        let model = |g: proto::GraphProto| {
            proto::ModelProto {
                ir_version: Some(super::super::onnx::IR_VERSION),
                opset_import: vec![proto::OperatorSetIdProto {
                    domain: Some(String::new()),
                    version: Some(super::super::onnx::OPSET),
                }],
                graph: Some(g),
                ..Default::default()
            }
            .encode_to_vec()
        };
        let plain = model(graph());
        let lifted = lift_model(&plain).unwrap();
        assert_ne!(plain, lifted);
        let runtime = Runtime::get().expect("ONNX Runtime (scripts/fetch-ort.sh)");
        let input: Vec<f32> = (0..3 * 40).map(|i| ((i as f32) * 0.37).sin()).collect();
        let run = |bytes: &[u8]| {
            let mut s = runtime.session(bytes, 1, Provider::Cpu).unwrap();
            s.run(&input, 3, &[1, 40], &[]).unwrap().logits
        };
        let (a, b) = (run(&plain), run(&lifted));
        assert_eq!(a.len(), 12);
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-5, "lifted logits differ by {worst}");
    }
}
