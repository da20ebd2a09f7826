"""Build bert4sim's small Chinese NLI demo set (written by the bert4sim developers; no third-party data).

CNSD/SNLI-style JSON lines {"sentence1", "sentence2", "gold_label"}: each premise is a hand-written
everyday scene (who, where, doing what) and gets one hypothesis of each label, from hand-written
rules: entailment generalises the scene (someone / a broader activity / indoors-outdoors),
contradiction states an incompatible activity or an empty place, neutral adds something the scene
does not say. A few rows carry "-" (no consensus), as in SNLI; readers skip them. The dev premises
use subject-activity combinations not in train.

Run from the repository root: python examples/data/make_nli.py
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))

SUBJECTS = ["两个孩子", "一位老人", "一名男子", "一个女孩", "几个学生", "一位母亲", "一名厨师", "一对夫妻",
            "一位医生", "一群游客", "一名工人", "一个小男孩"]
# activity -> (places as (phrase, outdoors?), broader activity, an incompatible activity)
ACTIVITIES = {
    "踢足球": ([("公园里", True), ("操场上", True)], "运动", "躺在床上睡觉"),
    "打篮球": ([("体育馆里", False), ("操场上", True)], "运动", "坐在沙发上看电视"),
    "跑步": ([("河边", True), ("公园里", True)], "锻炼身体", "坐在办公室里开会"),
    "游泳": ([("游泳池里", False), ("海边", True)], "在水里运动", "在雪地里滑雪"),
    "做饭": ([("厨房里", False), ("餐厅后厨", False)], "准备食物", "在外面跑步"),
    "看书": ([("图书馆里", False), ("窗边", False)], "阅读", "在舞台上跳舞"),
    "弹钢琴": ([("客厅里", False), ("舞台上", False)], "演奏乐器", "在河边钓鱼"),
    "骑自行车": ([("街道上", True), ("山路上", True)], "骑车出行", "在家里洗碗"),
    "买菜": ([("市场里", False), ("超市里", False)], "购物", "在床上睡觉"),
    "钓鱼": ([("湖边", True), ("河边", True)], "在水边休息", "在球场上打篮球"),
    "画画": ([("教室里", False), ("院子里", True)], "创作一幅画", "在街上骑自行车"),
    "唱歌": ([("舞台上", False), ("广场上", True)], "表演节目", "在图书馆里安静地看书"),
    "种花": ([("花园里", True), ("阳台上", True)], "做园艺", "在游泳池里游泳"),
    "洗衣服": ([("洗衣房里", False), ("河边", True)], "做家务", "在操场上踢足球"),
    "拍照": ([("广场上", True), ("山顶上", True)], "用相机记录风景", "闭着眼睛睡觉"),
    "排队": ([("车站里", False), ("银行门口", True)], "等待", "在飞机上睡觉"),
}
NEUTRAL = ["{s}是第一次来{p}", "{s}每天都来{p}{a}", "{s}{a}是为了参加比赛", "{s}心情很好", "{s}在等一位朋友",
           "{s}刚刚吃过午饭", "今天是周末", "{s}{a}已经有一个小时了", "{s}打算明天再来", "天气很热"]


def scene_rows(subject, activity, rng):
    places, broader, incompatible = ACTIVITIES[activity]
    place, outdoors = rng.choice(places)
    premise = f"{subject}在{place}{activity}"
    entailment = rng.choice([f"有人在{place}{activity}", f"{subject}在{broader}",
                             f"{subject}在{'户外' if outdoors else '室内'}"])
    contradiction = rng.choice([f"{subject}正在{incompatible}", f"{place.rstrip('里上')}没有人"])
    neutral = rng.choice(NEUTRAL).format(s=subject, p=place.rstrip("里上"), a=activity)
    rows = [(premise, entailment, "entailment"), (premise, contradiction, "contradiction"),
            (premise, neutral, "neutral")]
    if rng.random() < 0.03:  # annotators did not agree
        rows[rng.randrange(3)] = (premise, rows[rng.randrange(3)][1], "-")
    return rows


def main():
    rng = random.Random(15)
    combos = [(s, a) for s in SUBJECTS for a in ACTIVITIES]
    rng.shuffle(combos)
    splits = {"nli_train.jsonl": combos[:110], "nli_dev.jsonl": combos[110:150]}
    for name, chosen in splits.items():
        rows = [row for subject, activity in chosen for row in scene_rows(subject, activity, rng)]
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
            for premise, hypothesis, label in rows:
                f.write(json.dumps({"sentence1": premise, "sentence2": hypothesis, "gold_label": label},
                                   ensure_ascii=False) + "\n")
        print(f"wrote {len(rows)} rows to {name}")


if __name__ == "__main__":
    main()
