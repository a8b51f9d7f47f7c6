"""The words the dashboard uses, in plain language for a hospital's data officer.

Invariants:
- Each entry is two or three sentences and has a unique anchor (lower-case ASCII letters,
  digits and hyphens), so a page can link straight to it.
- `lookup` finds an entry by its term or any alias, ignoring case: the aliases are the
  words as the dashboard writes them ("per value", "obfuscator", "ā").
- `entries` is alphabetical by the term's plain letters (n² under N, XᵀX under X).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    term: str
    text: str
    aliases: tuple[str, ...] = ()

    @property
    def anchor(self) -> str:
        """The term's plain letters as a URL fragment: "Modulus n" -> "modulus-n"."""
        return slug(self.term)

    @property
    def words(self) -> tuple[str, ...]:
        """The term and its aliases: every way the dashboard writes it."""
        return (self.term, *self.aliases)


def slug(text: str) -> str:
    """Lower-case ASCII letters and digits joined by hyphens (accents and superscripts become
    their plain letters; Greek letters are dropped, so name them in words too)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")


def _key(entry: Entry) -> str:
    return unicodedata.normalize("NFKD", entry.term).casefold()


ENTRIES: tuple[Entry, ...] = (
    Entry(
        "SecAgg+",
        "Flower's secure aggregation: each pair of hospitals masks its numbers with random values that "
        "cancel in the sum, and shares the seeds in pieces (Shamir shares) so that the sum can still be "
        "unmasked if some hospitals drop out. Nobody holds a decryption key; enough hospitals together could "
        "unmask one of them.",
        ("SecAgg", "secure aggregation"),
    ),
    Entry(
        "CKKS",
        "A homomorphic encryption scheme for approximate arithmetic on vectors of real numbers (Cheon, Kim, "
        "Kim and Song, 2017), used through the TenSEAL library by NVIDIA FLARE. Sums come back slightly off, "
        "by an error far below a gradient's size.",
        ("TenSEAL",),
    ),
    Entry(
        "Paillier",
        "The encryption scheme fedviz uses, published by Pascal Paillier in 1999. Its special property is "
        "that anyone can add numbers while they stay encrypted, without being able to read them. That is "
        "what lets hospitals sum their gradients without showing them to each other.",
        ("Paillier encryption", "Paillier key"),
    ),
    Entry(
        "Ciphertext",
        "An encrypted number: here a whole number of about 600 to 2,500 digits, depending on the key "
        "length. Without the private key it cannot be told apart from a random number of the same size. "
        "The ring inspector shows the ones that travelled, digit for digit.",
        ("ciphertexts", "encrypted"),
    ),
    Entry(
        "Plaintext",
        "A value before encryption or after decryption, readable by anyone who holds it. In fedviz the "
        "plaintexts are a hospital's gradient values, encoded as whole numbers. Only the server ever turns "
        "a ciphertext back into a plaintext, and only for the total.",
        ("in the clear", "plaintexts"),
    ),
    Entry(
        "Public key",
        "What the server publishes so that everyone can encrypt: for Paillier, the modulus n. Knowing it "
        "does not let anyone decrypt. Every hospital receives it before the first federated round.",
    ),
    Entry(
        "Private key",
        "What decrypts: the two secret prime numbers whose product is n. In fedviz only the server (the key "
        "holder) has it; it never leaves that party and is never shown on any page.",
        ("secret key",),
    ),
    Entry(
        "Homomorphic addition",
        "Adding numbers while they are encrypted: multiplying two Paillier ciphertexts gives a ciphertext "
        "of the sum of their plaintexts. Each hospital on the ring uses it to add its own gradient to the "
        "running total it cannot read.",
        ("homomorphic", "homomorphically"),
    ),
    Entry(
        "Encoding",
        "How a gradient's decimal numbers become the whole numbers Paillier encrypts. fedviz writes every "
        "value on one agreed fixed-point grid, either packed several to a ciphertext or one per "
        "ciphertext.",
        ("encode", "encodes"),
    ),
    Entry(
        "Fixed-point",
        "Writing a decimal number as a whole number of small steps: here steps of 2⁻⁵⁶, so 1.5 becomes "
        "1.5 × 2⁵⁶. Every hospital uses the same step, so sums stay exact and nothing about a value's size "
        "leaks through the format.",
        ("fixed point", "grid"),
    ),
    Entry(
        "Packed slots",
        "The fast encoding: all of a hospital's gradient values sit side by side in one large number, each "
        "in its own slot of bits, with spare bits so that sums never spill into the next slot. One "
        "ciphertext then carries all the values (11 for the diabetes data) instead of one each.",
        ("packed", "packing", "slot", "slots"),
    ),
    Entry(
        "Per-value encoding",
        "The original post's encoding: each gradient value is encrypted on its own, so a message holds one "
        "ciphertext per value (11 for the diabetes data). It is simpler, and its messages are that many "
        "times bigger and much slower to make than packed ones.",
        ("per value", "per-value"),
    ),
    Entry(
        "Encryption randomness",
        "Fresh random numbers mixed into every encryption, so that encrypting the same value twice gives "
        "two different ciphertexts. Without it, anyone could spot equal values. In the code it is called "
        "the obfuscator.",
        ("obfuscator", "obfuscators", "randomness"),
    ),
    Entry(
        "DJN",
        "A faster way to draw the encryption randomness, after Damgård, Jurik and Nielsen: a short random "
        "exponent applied to a fixed public value. It rests on one extra, standard assumption; 'standard' "
        "randomness relies on Paillier's assumption alone.",
        ("Damgård–Jurik–Nielsen", "short-exponent"),
    ),
    Entry(
        "Security bits",
        "How hard a key is to break, stated as the length of an equally strong symmetric key: 2048-bit "
        "Paillier keys give about 112-bit security. NIST asks for at least 112 for new systems, which is "
        "why 1024-bit keys (about 80) carry a warning.",
        ("security", "bit security"),
    ),
    Entry(
        "Key length",
        "The size of the modulus n in bits: 1024, 2048, 3072 or 4096. Longer keys are harder to break and "
        "make every encryption and message slower and larger.",
        ("key size", "bits"),
    ),
    Entry(
        "Modulus n",
        "The public key itself: the product of two secret primes, a number of several hundred digits. "
        "Plaintexts are numbers below n; the walkthrough shows its first and last digits.",
        ("modulus", "n"),
    ),
    Entry(
        "n² (n squared)",
        "Ciphertexts are numbers below n², so they are twice as long as the key: 4096 bits (1,233 digits) "
        "at a 2048-bit key. Adding encrypted values means multiplying ciphertexts modulo n².",
        ("n²", "n squared"),
    ),
    Entry(
        "Gradient",
        "For each model coefficient (11 for the diabetes data), how much and in which direction the "
        "prediction error on a hospital's patients would change if that coefficient moved. It is computed from the patients' "
        "records, so it carries information about them; that is why it travels encrypted.",
        ("gradients",),
    ),
    Entry(
        "Gradient descent",
        "The training method: repeatedly move every coefficient a small step against its gradient, so the "
        "prediction error shrinks. Each step is one round.",
        ("descent",),
    ),
    Entry(
        "Learning rate",
        "The size of each gradient-descent step, written η (eta), e.g. 0.01. Too small and training is "
        "slow; too large and it diverges, which fedviz predicts and refuses before running.",
        ("η", "eta", "step size"),
    ),
    Entry(
        "MSE",
        "Mean squared error: the average of (predicted − actual)² over patients, here the 50 held-out test "
        "patients. Lower is better; the charts show it round by round.",
        ("mean squared error", "test MSE"),
    ),
    Entry(
        "Local training",
        "Each hospital trains on its own patients only, sharing nothing. It is the baseline federated "
        "training has to beat.",
        ("local", "local only"),
    ),
    Entry(
        "Federated training",
        "The hospitals train one model together without pooling their data: each round only their "
        "encrypted gradients travel, and only the average comes out in the clear. It usually beats local "
        "training, because every model learns from every hospital's patients.",
        ("federated", "federated learning"),
    ),
    Entry(
        "Warm start",
        "Federated rounds continue from each hospital's locally trained model, as the original post does. "
        "That is why hospitals can end with slightly different results.",
        ("warm",),
    ),
    Entry(
        "Cold start",
        "Federated rounds start from an all-zero model instead of the local ones. Every hospital then ends "
        "with exactly the model that training on the pooled data would give; differential privacy always "
        "starts cold.",
        ("cold",),
    ),
    Entry(
        "Ring",
        "The route of one round: hospital 1 sends its encrypted gradient to hospital 2, which adds its own "
        "and passes it on, and the last hospital hands the total to the server. Nobody but the server can "
        "decrypt anything on it.",
        ("ring order",),
    ),
    Entry(
        "Hop",
        "One message on the ring, from one hospital to the next (or from the last to the server). Hop k "
        "carries the encrypted sum of the first k gradients.",
        ("hops",),
    ),
    Entry(
        "Coalition",
        "A group of parties that pool what they saw, e.g. the server and hospital 2. The Privacy page "
        "shows whose gradient each coalition can recover.",
        ("coalitions", "collude", "collusion"),
    ),
    Entry(
        "Difference attack",
        "A hospital subtracts its own gradient from the broadcast total. With 2 hospitals the result is "
        "the other hospital's gradient, exactly; with 3 or more it is only the others' sum.",
        ("difference",),
    ),
    Entry(
        "XᵀX",
        "A summary of all patients' records multiplied with themselves (X is the table of records). The "
        "broadcast averages reveal the pooled XᵀX after enough rounds, so even the aggregate says "
        "something about the data.",
        ("X^T X", "Gram matrix"),
    ),
    Entry(
        "Average gradient (ā)",
        "What the server broadcasts each round: the decrypted total divided by the number of hospitals. "
        "It is public, and every hospital takes its step with it.",
        ("ā", "average", "broadcast average"),
    ),
    Entry(
        "Differential privacy",
        "A guarantee that the trained model hardly depends on any one patient: each patient's influence is "
        "capped and random noise is added. The strength is stated as ε and δ; stronger privacy means a "
        "noisier model.",
        ("DP",),
    ),
    Entry(
        "Epsilon (ε)",
        "The privacy budget of differential privacy: how much any one patient can change what comes out, "
        "over all rounds. Smaller is more private, e.g. 1 is strong and 10 is weak.",
        ("ε", "epsilon", "privacy budget"),
    ),
    Entry(
        "Delta (δ)",
        "The small probability that differential privacy's ε guarantee does not hold, e.g. 1e-05. It "
        "should be far below one over the number of patients.",
        ("δ", "delta"),
    ),
    Entry(
        "Clip norm",
        "Under differential privacy, the most any one patient's gradient may count: a longer one is scaled "
        "down to this length before it is added. It bounds each patient's influence so the noise can hide "
        "it.",
        ("clip", "clipping", "clipped"),
    ),
    Entry(
        "Noise multiplier",
        "How much random noise differential privacy adds, relative to the clip norm, written z. The "
        "accountant picks it from ε, δ and the number of rounds.",
        ("z",),
    ),
    Entry(
        "Pairwise masks",
        "Every pair of hospitals agrees a secret and adds random numbers that cancel exactly in the full "
        "sum. A partial sum that a curious server and hospital decrypt together is then meaningless noise, "
        "while the result is unchanged.",
        ("masks", "mask", "pairwise"),
    ),
    Entry(
        "Shuffled ring",
        "A new public order of the ring every round. It moves the ring's weak spot (the first hospital's "
        "message) from hospital to hospital instead of always exposing hospital 1.",
        ("shuffle", "shuffled", "Shuffle the ring"),
    ),
    Entry(
        "Flower",
        "An open-source framework for federated learning (flower.ai). With the Flower engine every "
        "hospital and the key holder runs as its own process and messages pass through Flower, as they "
        "would between real sites.",
        ("flwr",),
    ),
    Entry(
        "Relay",
        "In a Flower run, the party that carries messages between the others (Flower's ServerApp). It "
        "holds no key: on the ring the hops are sealed, so it sees only sizes and timing; in the star it "
        "sees ciphertexts it cannot read.",
        ("ServerApp",),
    ),
    Entry(
        "Key holder",
        "The party holding the private key: in fedviz, the server. It decrypts only the round's total and "
        "broadcasts the average.",
        ("server",),
    ),
    Entry(
        "phe",
        "python-paillier, the open-source Python library for Paillier encryption that fedviz builds on. "
        "fedviz keeps its serialisation but encodes every value on one fixed grid, so the exponent phe "
        "sends in the clear reveals nothing.",
        ("python-paillier",),
    ),
    Entry(
        "Eavesdropper",
        "Someone who can read the network between the parties. On the ring they see only ciphertexts, "
        "which are useless without the private key, and the broadcast average, which is public anyway.",
        ("eavesdropping",),
    ),
    Entry(
        "Logistic regression",
        "A model that predicts one of two labels, such as benign or malignant, as a probability between 0 "
        "and 1. Hospitals train it exactly like the linear model: each computes its gradient on its own "
        "rows and the ring adds them encrypted.",
        ("logistic", "classifier", "classification"),
    ),
    Entry(
        "Log-loss",
        "How wrong a classifier's probabilities are on the test rows: 0 is perfect, and confident wrong "
        "answers cost the most. Lower is better, like the MSE for a regression.",
        ("log loss", "cross-entropy"),
    ),
    Entry(
        "Accuracy",
        "The share of test rows whose label the classifier gets right. It is easy to read but blunt: a "
        "model that is barely sure counts the same as one that is certain, which the log-loss does not.",
        (),
    ),
    Entry(
        "Split",
        "How the training rows are dealt to the hospitals, to mimic how real sites differ. They can go in "
        "order, at random, sorted by a feature (young and old hospitals), or with a label skew, where each "
        "hospital sees mostly one outcome (smaller α, more lopsided).",
        ("label skew", "by-feature", "Dirichlet"),
    ),
    Entry(
        "Star",
        "The other way to aggregate on Flower: every hospital sends its encrypted gradient to a relay at "
        "once, the relay multiplies them and hands the product to the key holder. It is faster than the "
        "ring, but the key holder is shown every part so that it can check the sum is complete.",
        ("star topology",),
    ),
    Entry(
        "Standardisation",
        "Rescaling every feature to mean 0 and standard deviation 1 so that no unit dominates the "
        "training. fedviz computes the pooled means and deviations through the encrypted ring, so no "
        "hospital sees another's statistics.",
        ("standardised", "standardise"),
    ),
)


def entries() -> list[Entry]:
    """All entries, alphabetically by the term's plain letters."""
    return sorted(ENTRIES, key=_key)


def lookup(word: str) -> Entry | None:
    """The entry whose term or alias is `word` (case ignored), else None."""
    wanted = word.casefold()
    return next((e for e in ENTRIES if any(w.casefold() == wanted for w in e.words)), None)


def search(query: str) -> list[Entry]:
    """The entries (alphabetical) whose term, aliases or text contain `query`, case
    ignored; all of them for an empty query."""
    wanted = query.strip().casefold()
    return [e for e in entries() if not wanted or any(wanted in t.casefold() for t in (*e.words, e.text))]
