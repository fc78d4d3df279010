//! Hyper-parameters as the reference sees them through `AutoConfig.from_pretrained(dir).to_dict()`
//! of transformers 4.57.6 (hazard H1). To be completed.
