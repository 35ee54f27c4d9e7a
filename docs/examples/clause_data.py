"""Makes the toy data of docs/operate.md's walk-through: NDA clauses with a yes/no question each,
answered as JSON ({"label": "yes"}), as hone chat examples (train.jsonl, valid.jsonl) and a
prompt file for `hone bench serve` (prompts.jsonl, unseen party names). Usage:
python3 clause_data.py OUT_DIR"""
import json
import random
import sys

FACTS = [
    ("The Recipient may disclose Confidential Information to its employees who need to know it.", "may the recipient share information with its employees", "yes"),
    ("The Recipient shall not disclose Confidential Information to any third party, including its employees.", "may the recipient share information with its employees", "no"),
    ("The obligations of this Agreement survive for three years after termination.", "do the obligations survive termination", "yes"),
    ("All obligations end when this Agreement terminates.", "do the obligations survive termination", "no"),
    ("Confidential Information includes only information marked as confidential.", "must information be marked to be confidential", "yes"),
    ("Confidential Information includes all information disclosed, whether marked or not.", "must information be marked to be confidential", "no"),
    ("On request, the Recipient shall return or destroy all copies.", "must the recipient return or destroy copies on request", "yes"),
    ("The Recipient may keep copies of Confidential Information for its records.", "must the recipient return or destroy copies on request", "no"),
    ("The Recipient shall not reverse engineer any samples.", "is reverse engineering allowed", "no"),
    ("The Recipient may analyse and reverse engineer the samples provided.", "is reverse engineering allowed", "yes"),
    ("Nothing in this Agreement grants any licence to the Recipient.", "does the agreement grant a licence", "no"),
    ("The Discloser grants the Recipient a licence to use the information for the Purpose.", "does the agreement grant a licence", "yes"),
    ("The Recipient may disclose information when required by law, after notifying the Discloser.", "may the recipient disclose information required by law", "yes"),
    ("The Recipient may not disclose information even if a court orders it.", "may the recipient disclose information required by law", "no"),
    ("The Recipient may share Confidential Information with its affiliates.", "may the recipient share information with affiliates", "yes"),
    ("The Recipient shall not share Confidential Information with its affiliates.", "may the recipient share information with affiliates", "no"),
]
SYSTEM = 'You review NDA clauses. Reply only with JSON: {"label": "yes"} or {"label": "no"}.'


def main(out):
    random.seed(3)
    parties = ["Acme Ltd", "Zephyr S.A.", "Juniper LLC", "Northwind GmbH", "Orion Inc", "Kestrel BV"]
    rows = []
    for i in range(160):
        clause, q, label = random.choice(FACTS)
        clause = clause.replace("The Recipient", f"{random.choice(parties)} (the Recipient)", 1)
        rows.append({"id": f"ex-{i}", "label": label, "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f'Clause: "{clause}"\nQuestion: {q}?'},
            {"role": "assistant", "content": json.dumps({"label": label})}]})
    random.shuffle(rows)
    for name, part in (("train.jsonl", rows[:128]), ("valid.jsonl", rows[128:])):
        with open(f"{out}/{name}", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in part)
    with open(f"{out}/prompts.jsonl", "w") as f:
        for _ in range(60):
            clause, q, _ = random.choice(FACTS)
            party = random.choice(["Vega Co", "Lumen plc", "Atlas AG"])
            clause = clause.replace("The Recipient", f"{party} (the Recipient)", 1)
            f.write(json.dumps({"prompt": f'{SYSTEM}\nClause: "{clause}"\nQuestion: {q}?'}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
