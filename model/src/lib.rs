//! Cellar's executable spec and stateright models. TODO(helper: models).
