#!/usr/bin/env bash
# One OpenAI batch line per document in docs/, each asking for JSON matching schema.json.
# Usage: ./make-batch.sh > batch.jsonl
set -euo pipefail
cd "$(dirname "$0")"
for doc in docs/*.txt; do
  jq -nc --arg id "$(basename "$doc" .txt)" --rawfile text "$doc" --slurpfile schema schema.json '{
    custom_id: $id, method: "POST", url: "/v1/chat/completions",
    body: {
      messages: [
        {role: "system", content: "Extract the fields as JSON."},
        {role: "user", content: $text}
      ],
      max_tokens: 300, temperature: 0,
      response_format: {type: "json_schema", json_schema: {name: "story", strict: true, schema: $schema[0]}}
    }}'
done
