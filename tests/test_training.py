"""Fine-tuning really learns: the loss falls and the tuned model ranks the trained pairs better."""

import numpy as np

from medsearch.encoders import load_encoder
from medsearch.training import finetune

PAIRS = [
    ("What lowers blood pressure?", "Salt reduction and antihypertensive drugs lower blood pressure."),
    ("Is ceftriaxone safe in pregnancy?", "Cephalosporins are considered safe in pregnancy under medical advice."),
    ("How to spot a stroke", "Face drooping, arm weakness and speech difficulty are stroke signs."),
    ("Treatment of asthma attacks", "Short-acting bronchodilator inhalers relieve asthma attacks."),
    ("Does metformin treat diabetes?", "Metformin is first-line therapy for type 2 diabetes."),
    ("Flu shot for the elderly", "Influenza vaccination is advised every autumn for adults over 65."),
    ("Fever in a toddler", "Give paracetamol for a child's fever and see a doctor if it lasts."),
    ("What is gout?", "Gout is arthritis caused by uric acid crystals in a joint."),
]


def test_infonce_loss_falls_and_ranking_improves(tmp_path):
    base = tmp_path / "base"
    load_encoder("minilm").model.save(str(base))
    out = tmp_path / "tuned"
    losses = finetune(base, PAIRS, out, epochs=4, batch_size=4, lr=1e-4)
    assert len(losses) == 8
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    tuned = load_encoder(str(out))
    queries = tuned.encode([q for q, _ in PAIRS], query=True)
    passages = tuned.encode([p for _, p in PAIRS], query=False)
    assert ((queries @ passages.T).argmax(axis=1) == np.arange(len(PAIRS))).all()
