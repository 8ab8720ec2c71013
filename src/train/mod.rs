//! `ecg-train`: the segment and beat models' data, network, training loop,
//! evaluation and ONNX export, in the four-way split of burn's guide ([`data`],
//! [`model`], [`training`], [`inference`]), then the commands: [`segment`] and
//! [`beat`] (each builds on [`experiment`], what they share, and neither imports
//! the other), [`evaluate`], [`stack`] (with [`logistic`]), [`beat_mlp`] (with [`mlp`] and [`augment`]); plus the ONNX writer
//! ([`onnx`]), the [`metrics`], run configs ([`run_config`]), MLflow
//! tracking ([`tracking`]) and hyper-parameter sweeps ([`sweep`]). Behind the `train` feature so the server
//! builds without burn.

pub mod augment;
pub mod beat;
pub mod beat_mlp;
pub mod cnn_lstm;
pub mod crt_net;
pub mod data;
pub mod evaluate;
pub mod experiment;
pub mod heartbeat;
pub mod inference;
pub mod lift_2d;
pub mod logistic;
pub mod metrics;
pub mod mlp;
pub mod model;
pub mod onnx;
pub mod resnet;
pub mod run_config;
pub mod segment;
pub mod stack;
pub mod sweep;
pub mod tracking;
pub mod training;
