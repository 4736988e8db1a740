"""The study's one fine-tuning recipe, fixed before any selection was compared (see README: how it was
chosen). Every subset of every scenario is fine-tuned with it, from the same base model."""

RECIPE = {
    "epochs": 2,           # passes over the subset (so a 30% subset costs 30% of full data's steps)
    "seq_len": 1024,       # packed row length (tokens)
    "batch_rows": 4,       # rows per step (4,096 token positions)
    "lr": 1e-3,
    "warmup_frac": 0.05,
    "floor": 0.1,          # cosine decay to floor * lr
    "weight_decay": 0.0,
    "clip": 1.0,
    "max_len": 768,        # a sample's most tokens (prompt cut from the left beyond)
}
