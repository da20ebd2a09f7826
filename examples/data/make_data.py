"""Build bert4sim's Chinese demo data (written by the bert4sim developers; no third-party data).

Each domain lists hand-written intents (an action on an object, e.g. 注销 + 信用卡). A group of
similar questions is one intent phrased with several hand-written question patterns, chosen with a
fixed seed. Everything else (pairs, graded pairs, retrieval set, passages, vocab) is derived here.

Run from the repository root: python examples/data/make_data.py
"""
import json
import os
import random
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))

# domain -> list of (action, object); every combination is a distinct, plausible request.
INTENTS = {
    "banking": [
        ("注销", "信用卡"), ("激活", "信用卡"), ("挂失", "银行卡"), ("补办", "银行卡"), ("修改", "银行卡密码"),
        ("重置", "网银登录密码"), ("开通", "网上银行"), ("关闭", "短信通知"), ("提高", "信用卡额度"),
        ("查询", "账户余额"), ("查询", "信用卡账单"), ("申请", "账单分期"), ("提前还清", "房贷"), ("申请", "个人贷款"),
        ("办理", "定期存款"), ("提前支取", "定期存款"), ("开立", "储蓄账户"), ("绑定", "手机银行"), ("解绑", "快捷支付"),
        ("设置", "转账限额"), ("撤销", "一笔转账"), ("打印", "银行流水"), ("开具", "存款证明"), ("兑换", "外币"),
        ("购买", "理财产品"), ("赎回", "基金"), ("查询", "贷款进度"), ("更换", "预留手机号"), ("冻结", "银行账户"),
        ("解冻", "银行账户"), ("升级", "借记卡"), ("领取", "信用卡积分礼品"), ("办理", "信用卡自动还款"),
        ("取消", "信用卡自动还款"), ("申请", "信用卡年费减免"), ("查询", "信用卡还款日"), ("开通", "跨境汇款"),
        ("查询", "汇款到账时间"), ("修改", "银行卡预留信息"), ("注册", "手机银行"), ("申请", "数字人民币钱包"),
        ("退还", "多扣的手续费"), ("投诉", "网点服务态度"), ("预约", "大额取现"), ("办理", "银行卡销户"),
        ("申请", "信用卡临时额度"), ("查询", "征信报告"), ("调整", "房贷利率"), ("申请", "还款宽限期"),
        ("解除", "银行卡锁定"), ("查询", "开户行信息"), ("延长", "信用卡有效期"),
        ("开通", "信用卡境外支付"), ("关闭", "小额免密支付"), ("查询", "存款利率"), ("申请", "银行保函"),
    ],
    "shopping": [
        ("申请", "退货"), ("申请", "退款"), ("修改", "收货地址"), ("取消", "订单"), ("查询", "物流信息"), ("催促", "发货"),
        ("使用", "优惠券"), ("领取", "优惠券"), ("申请", "换货"), ("开具", "电子发票"), ("修改", "发票抬头"),
        ("联系", "人工客服"), ("投诉", "商家"), ("评价", "商品"), ("删除", "差评"), ("申请", "价格保护"),
        ("开通", "会员"), ("取消", "自动续费"), ("绑定", "银行卡支付"), ("修改", "支付密码"), ("查看", "历史订单"),
        ("修改", "订单备注"), ("延长", "收货时间"), ("申请", "售后维修"), ("查询", "退款进度"), ("拒收", "快递"),
        ("预约", "上门取件"), ("兑换", "积分"), ("参加", "拼团活动"), ("设置", "到货提醒"), ("申请", "七天无理由退货"),
        ("补寄", "缺少的配件"), ("更换", "配送时间"), ("开通", "先用后付"), ("关闭", "先用后付"), ("注销", "购物账号"),
        ("找回", "购物账号密码"), ("修改", "绑定手机号"), ("查看", "购物车"), ("清空", "购物车"), ("申请", "开店"),
        ("举报", "假冒商品"), ("使用", "礼品卡"), ("查询", "礼品卡余额"), ("设置", "默认收货地址"), ("合并", "多个订单付款"),
        ("申请", "运费险理赔"), ("查看", "商品保修期"), ("取消", "预售订单"), ("支付", "预售尾款"),
        ("修改", "收件人姓名"), ("查询", "优惠券有效期"), ("申请", "发票重开"), ("关闭", "个性化推荐"),
    ],
    "travel": [
        ("退订", "机票"), ("改签", "机票"), ("购买", "火车票"), ("退订", "火车票"), ("改签", "火车票"), ("预订", "酒店"),
        ("取消", "酒店预订"), ("办理", "登机牌"), ("选择", "飞机座位"), ("托运", "行李"), ("查询", "航班动态"),
        ("办理", "护照"), ("申请", "旅游签证"), ("延长", "签证有效期"), ("购买", "旅游保险"), ("申请", "航班延误险理赔"),
        ("预订", "接送机"), ("租", "车"), ("还", "租来的车"), ("预约", "景区门票"), ("退订", "景区门票"),
        ("查询", "行李托运额度"), ("补办", "临时乘机证明"), ("申请", "无障碍服务"), ("携带", "宠物乘机"),
        ("办理", "港澳通行证"), ("续签", "港澳通行证"), ("开具", "行程单"), ("查询", "高铁时刻表"), ("购买", "儿童票"),
        ("办理", "学生票优惠"), ("升舱", "到商务舱"), ("找回", "遗失的行李"), ("申请", "酒店发票"), ("修改", "入住人信息"),
        ("延长", "酒店住宿"), ("办理", "提前退房"), ("预订", "跟团游"), ("退出", "跟团游"), ("兑换", "航空里程"),
        ("查询", "里程余额"), ("办理", "值机"), ("取消", "值机"), ("改", "乘机人姓名"), ("查询", "出入境政策"),
        ("办理", "国际驾照"), ("预订", "民宿"), ("投诉", "导游"),
        ("查询", "签证办理进度"), ("申请", "退票手续费减免"), ("预订", "机场贵宾厅"), ("查询", "酒店取消政策"),
    ],
    "health": [
        ("预约", "挂号"), ("取消", "挂号"), ("查询", "检查报告"), ("报销", "医药费"), ("办理", "医保卡"), ("激活", "医保电子凭证"),
        ("查询", "医保余额"), ("办理", "异地就医备案"), ("预约", "疫苗接种"), ("预约", "体检"), ("查询", "体检报告"),
        ("办理", "住院手续"), ("办理", "出院结算"), ("复印", "病历"), ("开具", "诊断证明"), ("申请", "门诊慢特病待遇"),
        ("预约", "专家门诊"), ("找", "家庭医生签约"), ("续签", "家庭医生"), ("开", "处方药"), ("进行", "网上问诊"),
        ("购买", "医保药品"), ("查询", "药品报销比例"), ("申请", "大病医疗救助"), ("缴纳", "城乡居民医保"),
        ("查询", "医保缴费记录"), ("补办", "医保卡"), ("挂失", "医保卡"), ("预约", "牙科洗牙"), ("预约", "眼科验光"),
        ("办理", "出生医学证明"), ("预约", "产检"), ("建立", "孕期档案"), ("申请", "生育津贴"), ("查询", "核酸检测结果"),
        ("预约", "心理咨询"), ("投诉", "医院收费"), ("查询", "医生出诊时间"), ("预约", "康复理疗"), ("办理", "陪护证"),
        ("申请", "病历邮寄"), ("查询", "医院停车位"), ("预约", "上门护理"), ("办理", "残疾评定"), ("预约", "儿童保健"),
        ("查询", "排队叫号进度"), ("退", "门诊费用"),
        ("申请", "医保异地报销"), ("预约", "核磁共振检查"), ("打印", "医疗电子发票"), ("查询", "住院费用清单"),
    ],
    "government": [
        ("补办", "身份证"), ("更换", "过期身份证"), ("办理", "临时身份证"), ("迁移", "户口"), ("办理", "居住证"),
        ("提取", "住房公积金"), ("查询", "公积金余额"), ("申请", "公积金贷款"), ("查询", "社保缴费记录"),
        ("转移", "社保关系"), ("领取", "失业金"), ("申请", "养老金"), ("办理", "退休手续"), ("补办", "社保卡"),
        ("激活", "社保卡金融功能"), ("换领", "驾驶证"), ("补办", "驾驶证"), ("预约", "驾照考试"), ("处理", "交通违章"),
        ("缴纳", "交通罚款"), ("办理", "车辆年检"), ("办理", "机动车过户"), ("申请", "新车上牌"), ("办理", "营业执照"),
        ("注销", "营业执照"), ("申报", "个人所得税"), ("办理", "个税退税"), ("开具", "完税证明"), ("办理", "结婚登记"),
        ("办理", "离婚登记"), ("申请", "出生登记"), ("开具", "无犯罪记录证明"), ("申请", "公租房"), ("办理", "不动产登记"),
        ("查询", "房产证进度"), ("申请", "低保"), ("申请", "高龄补贴"), ("办理", "残疾证"), ("开具", "居住证明"),
        ("申请", "人才落户"), ("办理", "出入境证件"), ("申请", "创业补贴"), ("办理", "电子社保卡"), ("查询", "档案存放地"),
        ("申请", "法律援助"), ("办理", "灵活就业参保"), ("申请", "租房提取公积金"),
        ("补办", "户口本"), ("办理", "护照加急"), ("查询", "养老保险待遇"), ("申请", "生育登记"),
    ],
    "study": [
        ("报名", "英语四级考试"), ("查询", "四级成绩"), ("打印", "准考证"), ("申请", "缓考"), ("申请", "补考"),
        ("查询", "期末成绩"), ("选", "选修课"), ("退", "选修课"), ("申请", "奖学金"), ("申请", "助学金"),
        ("办理", "助学贷款"), ("申请", "转专业"), ("办理", "休学"), ("办理", "复学"), ("开具", "在读证明"),
        ("打印", "成绩单"), ("申请", "宿舍调换"), ("报修", "宿舍设施"), ("借", "图书馆的书"), ("续借", "图书"),
        ("预约", "自习室座位"), ("提交", "毕业论文"), ("申请", "论文答辩"), ("查询", "论文查重结果"), ("领取", "毕业证"),
        ("补办", "学生证"), ("充值", "校园卡"), ("挂失", "校园卡"), ("报名", "研究生考试"), ("查询", "考研成绩"),
        ("申请", "保研"), ("办理", "学籍证明"), ("认证", "学历"), ("申请", "交换生项目"), ("报名", "计算机等级考试"),
        ("申请", "教室借用"), ("查询", "课程表"), ("请", "病假"), ("申请", "勤工助学岗位"), ("办理", "离校手续"),
        ("报名", "普通话考试"), ("申请", "创新创业学分"), ("修改", "选课密码"), ("查看", "培养方案"), ("申请", "成绩复核"),
        ("报名", "教师资格证考试"), ("办理", "学生医保"),
        ("申请", "延期毕业"), ("查询", "绩点排名"), ("办理", "图书馆借阅证"), ("申请", "宿舍退宿"),
    ],
    "devices": [
        ("重置", "路由器"), ("修改", "无线网络密码"), ("连接", "打印机"), ("安装", "打印机驱动"), ("清理", "手机内存"),
        ("备份", "手机照片"), ("恢复", "误删的文件"), ("升级", "手机系统"), ("关闭", "自动更新"), ("解决", "电脑卡顿"),
        ("重装", "电脑系统"), ("连接", "蓝牙耳机"), ("设置", "指纹解锁"), ("解决", "手机充电慢"), ("更换", "手机电池"),
        ("投屏", "到电视"), ("找回", "丢失的手机"), ("设置", "应用锁"), ("关闭", "后台应用"), ("解决", "网络断连"),
        ("提高", "网速"), ("设置", "家长模式"), ("导出", "微信聊天记录"), ("迁移", "旧手机数据"), ("扩展", "电脑内存"),
        ("清理", "电脑病毒"), ("卸载", "预装软件"), ("设置", "定时关机"), ("截取", "长图"), ("录制", "电脑屏幕"),
        ("解决", "耳机没声音"), ("校准", "手机屏幕"), ("调整", "屏幕亮度"), ("开启", "护眼模式"), ("设置", "双卡切换"),
        ("共享", "手机热点"), ("修复", "打印机卡纸"), ("连接", "公司VPN"), ("同步", "云端通讯录"), ("解除", "平板锁屏"),
        ("设置", "智能音箱"), ("配对", "智能手表"), ("解决", "电脑蓝屏"), ("延长", "笔记本续航"), ("更新", "显卡驱动"),
        ("注销", "云账号"), ("申请", "手机保修"),
        ("设置", "手机免打扰"), ("恢复", "出厂设置"), ("清理", "微信缓存"), ("开启", "手机双重验证"),
    ],
}

# Question patterns for "how do I ACT OBJ"; each group uses several of them.
PATTERNS = [
    "{o}怎么{a}", "怎么{a}{o}", "如何{a}{o}", "{o}如何{a}", "请问怎样{a}{o}", "我想{a}{o}，该怎么办",
    "{a}{o}的流程是什么", "{a}{o}需要哪些步骤", "想{a}{o}应该怎么操作", "{o}要怎么{a}呢", "怎样才能{a}{o}",
    "能告诉我怎么{a}{o}吗", "{a}{o}要去哪里办", "我要{a}{o}，具体怎么弄", "{o}在哪里{a}",
]
ANSWER_PATTERNS = [
    "{a}{o}可以在官方应用里完成。", "您也可以到线下服务网点{a}{o}。", "{a}{o}一般需要本人有效证件。",
    "通常一到三个工作日内可以{a}完毕。", "如遇问题，请联系人工客服协助{a}{o}。", "{a}{o}的进度可以随时在线查询。",
]
DOMAINS_ZH = {"banking": "银行", "shopping": "购物", "travel": "出行", "health": "医疗", "government": "政务",
              "study": "校园", "devices": "数码"}


def make_groups(rng):
    train, dev = [], []
    for domain, intents in INTENTS.items():
        intents = list(dict.fromkeys(intents))
        held = set(rng.sample(range(len(intents)), k=max(9, len(intents) // 6)))
        for i, (action, obj) in enumerate(intents):
            patterns = rng.sample(PATTERNS, k=rng.choice([4, 5]))
            sentences = list(dict.fromkeys(p.format(a=action, o=obj) for p in patterns))
            group = {"text": sentences[0], "synonyms": sentences[1:], "domain": domain, "action": action, "object": obj}
            (dev if i in held else train).append(group)
    return train, dev


def sentences_of(group):
    return [group["text"]] + group["synonyms"]


def make_pairs(groups, rng, graded):
    """Labelled (0/1) or graded (0-5) pairs from groups: same group, same domain, other domain."""
    rows = []
    for group in groups:
        sents = sentences_of(group)
        a, b = rng.sample(sents, 2)
        rows.append((a, b, 5.0 if graded else 1))
        same_domain = [g for g in groups if g is not group and g["domain"] == group["domain"]]
        other = rng.choice(same_domain)
        related = other["object"] == group["object"] or other["action"] == group["action"]
        score = (2.5 if related else 1.5) if graded else 0
        rows.append((rng.choice(sents), rng.choice(sentences_of(other)), score))
        if graded:
            far = rng.choice([g for g in groups if g["domain"] != group["domain"]])
            rows.append((rng.choice(sents), rng.choice(sentences_of(far)), 0.0))
            c, d = rng.sample(sents, 2)
            rows.append((c, d, 4.5 if len(set(c) ^ set(d)) > 4 else 5.0))
    rng.shuffle(rows)
    return rows


def write_tsv(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for a, b, label in rows:
            f.write(f"{a}\t{b}\t{label}\n")


def make_passages(groups, rng):
    passages = []
    for group in groups:
        a, o = group["action"], group["object"]
        answers = rng.sample(ANSWER_PATTERNS, k=3)
        first = f"关于{a}{o}：" + answers[0].format(a=a, o=o)
        near = rng.choice([f"{a}{o}可以在官方应用里办理。", f"{o}可以通过线上渠道{a}。"])
        near_twin = near.replace("可以", "也可以") if "可以" in near else near + "。"
        body = [first, near, answers[1].format(a=a, o=o), near_twin, answers[2].format(a=a, o=o)]
        passages.append("".join(body[: rng.choice([3, 4, 5])] if rng.random() < 0.5 else body))
        passages.append(f"{DOMAINS_ZH[group['domain']]}服务提示：{rng.choice(sentences_of(group))}？"
                        f"{answers[1].format(a=a, o=o)}{answers[2].format(a=a, o=o)}")
    return passages


def make_vocab(texts):
    counts = Counter(ch for text in texts for ch in text.lower() if not ch.isspace())
    extra = "0123456789abcdefghijklmnopqrstuvwxyz，。！？、；：“”‘’（）《》,.!?;:'\"()-_/%"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [ch for ch, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
    tokens += [ch for ch in extra if ch not in tokens]
    tokens += ["##" + ch for ch in "0123456789abcdefghijklmnopqrstuvwxyz"]
    return list(dict.fromkeys(tokens))


def main():
    rng = random.Random(2026)
    train, dev = make_groups(rng)
    for name, groups in (("simbert_train.json", train), ("simbert_dev.json", dev)):
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
            for group in groups:
                f.write(json.dumps({"text": group["text"], "synonyms": group["synonyms"]}, ensure_ascii=False) + "\n")
    half = len(dev) // 2
    splits = {"train": train, "dev": dev[:half], "test": dev[half:]}
    for split, groups in splits.items():
        write_tsv(os.path.join(HERE, f"pairs_{split}.tsv"), make_pairs(groups, rng, graded=False))
        write_tsv(os.path.join(HERE, f"sts_{split}.tsv"), make_pairs(groups, rng, graded=True))
    queries, corpus, qrels = {}, {}, {}
    for g, group in enumerate(dev):
        sents = sentences_of(group)
        queries[f"q{g}"] = sents[0]
        qrels[f"q{g}"] = []
        for s, sentence in enumerate(sents[1:]):
            corpus[f"d{g}_{s}"] = sentence
            qrels[f"q{g}"].append(f"d{g}_{s}")
    with open(os.path.join(HERE, "retrieval_dev.json"), "w", encoding="utf-8") as f:
        json.dump({"queries": queries, "corpus": corpus, "qrels": qrels}, f, ensure_ascii=False, indent=1)
    passages = make_passages(train + dev, rng)
    with open(os.path.join(HERE, "corpus.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(passages) + "\n")
    with open(os.path.join(HERE, "sentences.txt"), "w", encoding="utf-8") as f:  # for `bert4sim index build`
        f.write("\n".join(s for g in train + dev for s in sentences_of(g)) + "\n")
    texts = [s for g in train + dev for s in sentences_of(g)] + passages
    with open(os.path.join(HERE, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(make_vocab(texts)) + "\n")
    print(f"train groups {len(train)}, dev groups {len(dev)}, passages {len(passages)}")


if __name__ == "__main__":
    main()
