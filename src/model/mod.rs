//! What a trained model is to the rest of the system: its card (the JSON
//! manifest beside the `.onnx`, typed by model kind), the preprocessing the card
//! declares, and [`inputs::model_inputs`], the one function that turns a
//! recording into each model's input tensors for the server and the trainer
//! alike, so serving cannot drift from training.

pub mod card;
pub mod inputs;
pub mod preprocess;

pub use card::{BeatModel, HeartbeatModel, ModelCard, ModelKind, SegmentModel};
pub use inputs::{
    model_inputs, model_inputs_owned, BeatInputs, LeadRequest, ModelInputs, Models, Rows,
    SegmentInputs,
};
pub use preprocess::{
    BeatPreprocessing, BeatWindow, HeartbeatPreprocessing, SegmentPreprocessing, WindowFeatures,
};
